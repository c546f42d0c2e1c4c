"""Time to certify: whole suite runs against their floor (issue #15, items 1 and 5).

Three runs of ``pytest conformance``, each in its own process, side by side (they
spend most of their time waiting for a rate window, so they hardly compete):

* ``--strict`` against the reference server started separately
  (``python -m conformance.reference --port P``: the documented limits, a 60 s window);
* ``--strict`` against the independent server (``tests/independent/server.py``, the
  documented limits in fixed windows, the other reading wherever the page leaves one);
* the embedded default run (``pytest conformance``, no target).

For each: the wall time, the floor the run's own summary computes from its requests
and the rate budget (``results.json`` ``timing.floor``), the RATIO wall/floor, where
the time went, and the verdict. The exit status is 1 when a verdict is not the one
the server earns (the reference and the embedded run CONFORMANT; the independent
server under ``--strict`` failing SHOULDs only) -- never for a time.

    python -m benchmarks.certify
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: A run that takes longer than this is reported as such (the floor is one window).
RUN_TIMEOUT = 900


@dataclass
class Certified:
    name: str
    wall: float
    exit_code: int
    results: dict[str, Any]

    @property
    def timing(self) -> dict[str, Any]:
        return dict(self.results.get("timing") or {})

    @property
    def floor(self) -> float:
        return float(self.timing.get("floor", {}).get("seconds", 0.0))

    @property
    def verdict(self) -> dict[str, Any]:
        return dict(self.results.get("verdict") or {})


@contextmanager
def reference_server() -> Iterator[tuple[str, dict[str, str]]]:
    """``python -m conformance.reference --port 0`` in its own process; its URL is read
    from its first line, its development credentials are the documented ones."""
    from conformance.reference import DEV_PRINCIPALS

    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.reference", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"on (http://\S+)", first)
        if match is None:
            raise RuntimeError(f"the reference server did not start: {first!r}")
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain its output
        p1, p2 = DEV_PRINCIPALS[:2]
        yield match.group(1), _keys(p1.api_key, p1.session_key, p2.api_key, p2.session_key)
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def independent_server() -> Iterator[tuple[str, dict[str, str]]]:
    from tests.independent.server import IndependentServer

    server = IndependentServer()
    server.start()
    try:
        (_, (k1, s1)), (_, (k2, s2)) = list(server.principals.items())[:2]
        yield server.url, _keys(k1, s1, k2, s2)
    finally:
        server.stop()


def _keys(k1: str, s1: str, k2: str, s2: str) -> dict[str, str]:
    return {"COZE_API_KEY": k1, "COZE_SESSION_KEY": s1, "COZE_API_KEY_2": k2, "COZE_SESSION_KEY_2": s2}


def certify(name: str, args: Sequence[str], env: dict[str, str], into: list[Certified]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COZE_") and k != "CI"}
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
             "--report-dir", folder, *args],
            cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
        )
        wall = time.monotonic() - started
        path = Path(folder, "results.json")
        results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not results:
        print(f"{name}: no results.json (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}", flush=True)
    into.append(Certified(name, wall, proc.returncode, results))


def expected(run: Certified) -> bool:
    verdict = run.verdict
    if run.name.startswith("independent"):
        return verdict.get("status") == "NOT CONFORMANT" and not verdict.get("failing") and not verdict.get("not_run")
    return verdict.get("status") == "CONFORMANT" and run.exit_code == 0


def main(argv: Sequence[str] = ()) -> int:
    del argv
    runs: list[Certified] = []
    with reference_server() as (ref_url, ref_keys), independent_server() as (ind_url, ind_keys):
        threads = [
            threading.Thread(target=certify, args=(name, args, env, runs))
            for name, args, env in (
                ("reference --strict", ["--strict"], {"COZE_TARGET_URL": ref_url, **ref_keys}),
                ("independent --strict", ["--strict"], {"COZE_TARGET_URL": ind_url, **ind_keys}),
                ("embedded default", [], {}),
            )
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    status = 0
    print("run | wall | floor from the budget | RATIO wall/floor | verdict")
    for run in sorted(runs, key=lambda r: r.name):
        ratio = run.wall / run.floor if run.floor else float("nan")
        ok = expected(run)
        status |= 0 if ok else 1
        print(
            f"{run.name} | {run.wall:.1f} s | {run.floor:.0f} s | {ratio:.2f} | "
            f"{run.verdict.get('line', 'no verdict')}{'' if ok else '  <-- NOT THE EXPECTED VERDICT'}"
        )
        if run.verdict.get("failing_other"):
            print(f"  failing SHOULD/MAY: {', '.join(run.verdict['failing_other'])}")
        timing = run.timing
        if timing:
            waits = ", ".join(f"{g} {s:.1f} s" for g, s in timing.get("waiting_seconds", {}).items())
            print(
                f"  waiting for rate windows: {waits}; rate-limit phase {timing.get('ratelimit_phase_seconds', 0):.1f} s; "
                f"streaming {timing.get('streaming_seconds', 0):.1f} s; other {timing.get('other_seconds', 0):.1f} s; "
                f"requests {timing.get('requests')}"
            )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
