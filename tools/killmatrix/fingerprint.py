"""A profile's fingerprint: sha256 of every input that can change one of its runs'
outcomes, recorded in docs/kill-matrix.json beside the outcomes it produced.

``--check`` re-runs a sample only (tools/killmatrix/sample.py); the fingerprint is what
lets it trust the rest of the committed matrix: equal fingerprints mean the runs it did
not repeat would be run by the same code, against the same servers, with the same
options. Any change there -- a check, a fault, a schema, the independent server, the
tool itself, pytest's configuration -- makes the committed matrix stale, and ``--check``
asks for ``--write`` before it runs anything.

Not in it: docs/ and the README (no run reads them), and the versions of the installed
libraries (pytest, hypothesis, httpx: a fresh install takes the newest the pins allow,
and a fingerprint of them would go stale with every release). A library that changes
an outcome is caught the way it always was: by a sampled run that no longer reproduces.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools.killmatrix.plan import JOB_PYTEST_ARGS, ROOT, RUNS, Subject, plan

__all__ = ["INPUTS", "PARAMETERS", "Fingerprint", "files_digests", "fingerprint", "fingerprints", "input_files", "parameters", "stale_parts"]

#: The files a run reads, by part (each part hashed on its own, so that a stale matrix
#: says what changed): paths relative to the repository, a folder meaning every file in it.
INPUTS: Mapping[str, tuple[str, ...]] = {
    # The checks, the catalogue, the profiles, the reference server and its faults and
    # variants, the spec text the catalogue quotes.
    "conformance": ("conformance",),
    "schemas": ("schemas",),
    "independent server": ("tests/independent",),
    "kill matrix tool": ("tools/killmatrix",),
    # pytest.main runs from the repository: its [tool.pytest.ini_options] and conftest.py.
    "pytest configuration": ("pyproject.toml", "conftest.py"),
}
#: The part holding the profile's plan (its runs, their subjects and options).
PARAMETERS = "parameters"

#: A fingerprint: its sha256 and, per part of :data:`INPUTS` and the parameters, theirs.
Fingerprint = dict[str, Any]


def _skipped(relative: Path) -> bool:
    """Bytecode and caches: written by runs, never read as inputs."""
    return any(part == "__pycache__" or part.startswith(".") or part.endswith(".egg-info") for part in relative.parts) or (
        relative.suffix in (".pyc", ".pyo")
    )


def input_files(paths: Iterable[str], root: Path = ROOT) -> Iterator[Path]:
    """The files of ``paths`` (files, or folders walked), sorted, caches left out."""
    found: set[Path] = set()
    for name in paths:
        path = root / name
        candidates = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        found.update(p for p in candidates if not _skipped(p.relative_to(root)))
    yield from sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _files_digest(paths: Iterable[str], root: Path) -> str:
    digest = hashlib.sha256()
    for path in input_files(paths, root):
        digest.update(f"{path.relative_to(root).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not part of a fingerprint: {value!r}")


def parameters(profile: str, chosen: Sequence[Subject]) -> dict[str, Any]:
    """What a profile's runs are given besides the files: its runs (sorted: the order
    they start in decides no outcome), each subject's knobs and declarations, the
    suite's and pytest's options, the Python it runs on (major.minor)."""
    mine = [s for s in chosen if s.profile == profile]
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "runs": asdict(RUNS[profile]),
        "pytest": list(JOB_PYTEST_ARGS),
        "plan": sorted(spec.key for spec in plan(mine)),
        "subjects": [asdict(s) for s in sorted(mine, key=lambda s: s.name)],
    }


def fingerprint(profile: str, chosen: Sequence[Subject], root: Path = ROOT, *, files: Mapping[str, str] | None = None) -> Fingerprint:
    """The profile's fingerprint. ``files``: the digests of :data:`INPUTS` when already
    computed (they are every profile's)."""
    parts = dict(files if files is not None else files_digests(root))
    text = json.dumps(parameters(profile, chosen), sort_keys=True, default=_jsonable, ensure_ascii=False)
    parts[PARAMETERS] = hashlib.sha256(text.encode()).hexdigest()
    whole = hashlib.sha256("".join(f"{name}\0{parts[name]}\n" for name in sorted(parts)).encode()).hexdigest()
    return {"sha256": whole, "inputs": parts}


def files_digests(root: Path = ROOT) -> dict[str, str]:
    """The digest of every part of :data:`INPUTS`."""
    return {name: _files_digest(paths, root) for name, paths in INPUTS.items()}


def fingerprints(profiles: Iterable[str], chosen: Sequence[Subject], root: Path = ROOT) -> dict[str, Fingerprint]:
    """The fingerprint of each profile (the files hashed once)."""
    files = files_digests(root)
    return {p: fingerprint(p, chosen, root, files=files) for p in profiles}


def stale_parts(committed: Mapping[str, Any] | None, fresh: Fingerprint) -> list[str]:
    """The parts whose digest differs from the committed fingerprint's; every part when
    none was recorded. Empty exactly when the fingerprints are equal."""
    if not committed or committed.get("sha256") == fresh["sha256"]:
        return [] if committed else sorted(fresh["inputs"])
    old = committed.get("inputs", {})
    return sorted(name for name in set(old) | set(fresh["inputs"]) if old.get(name) != fresh["inputs"].get(name)) or ["sha256"]

