"""The shipped baseline of Coze Plus fb00b21 (baselines/coze-plus-fb00b21.toml): each entry
is a known bug of the real server, documented at its coze-wire.md line and reproduced by
the reference server's fault of the same name; a run against a studio server with those
bugs passes with the baseline and fails without it, and a server without them makes
every entry stale (an upgrade that fixed them is seen)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

from conformance.oracle.catalogue import CATALOGUE_PATH, load_catalogue
from conformance.reference.faults import dialect_faults
from conformance.reporting.baseline import load_baseline
from tests.support.against import run_suite

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "baselines" / "coze-plus-fb00b21.toml"
WIRE = (CATALOGUE_PATH.parent.parent / "spec" / "coze-wire.md").read_text(encoding="utf-8").splitlines()
ENTRIES = load_baseline(BASELINE, load_catalogue()).entries
#: The fault each entry names in its reason.
BUGS = {e.requirement: re.search(r"Reference fault: (\w+)\.", e.reason).group(1) for e in ENTRIES}  # type: ignore[union-attr]


def test_every_entry_cites_its_line_and_its_fault() -> None:
    assert len(ENTRIES) == 4
    for entry in ENTRIES:
        assert entry.requirement is not None and entry.requirement.startswith("STUDIO-")
        assert entry.source is not None and entry.source.startswith("coze-wire.md:")
        line = int(entry.source.rsplit(":", 1)[1])
        assert 1 <= line <= len(WIRE) and WIRE[line - 1].strip(), entry
        fault = dialect_faults("studio")[BUGS[entry.requirement]]
        assert (fault.dialect, fault.requirement) == ("studio", entry.requirement)


def run(faults: frozenset[str], *args: str) -> tuple[int, dict[str, object]]:
    with tempfile.TemporaryDirectory() as reports:
        done = run_suite(
            "reference", {"dialect": "studio", "faults": faults}, ["--profile", "studio", "-p", "no:randomly", "--report-dir", reports, *args]
        )
        return done.returncode, json.loads((Path(reports) / "results.json").read_text(encoding="utf-8"))


def failed(results: dict[str, object]) -> set[str]:
    return {r["id"] for r in results["requirements"] if r["outcome"] == "FAIL"}  # type: ignore[attr-defined, index]


@pytest.mark.slow
@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_the_known_bugs_pass_with_the_baseline_only(strict: bool) -> None:
    args = ("--strict",) if strict else ()
    bugs = frozenset(BUGS.values())
    code, results = run(bugs, *args)
    assert code == 1 and "STUDIO-ENV-002" in failed(results)
    code, results = run(bugs, "--expected-failures", str(BASELINE), *args)
    assert code == 0, results["verdict"]
    entries = results["baseline"]["entries"]  # type: ignore[index]
    assert {e["status"] for e in entries} == {"matched"}, entries


@pytest.mark.slow
def test_a_server_without_the_bugs_makes_the_entries_stale() -> None:
    code, results = run(frozenset(), "--strict", "--expected-failures", str(BASELINE))
    assert code == 1
    assert {e["status"] for e in results["baseline"]["entries"]} == {"stale"}  # type: ignore[index]
