"""The request budget and the documented-limits run.

One run of ``pytest conformance -n 2`` against the embedded reference server with its
documented limits and window -- the run that waits ~60 s for BP-001 -- made once and
asserted on from every angle:

* it passes, and the JUnit file shows the rate-limit test ran (and passed) in it;
* the phase began only after every other test of both workers had finished;
* before the phase, each principal sent at most 50 chat, 25 management and 90 info
  requests (fuzzing included), counted where they land: the server's limiter;
* no request before the phase was refused with a 429, and the pacer never waited.

The counting is done inside the pytest process that runs the embedded server: this
module doubles as a pytest plugin (``-p tests.test_budget``) which, when
``CZ_SELFTEST_LEDGER`` names a folder, wraps the reference limiter's ``decide`` and
writes every call (principal, group, time, refused) there when the run ends.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.run.barrier import PHASE_FILE
from conformance.run.pacing import PACER_FILE

#: Runs whole suites or servers for seconds: out of the fast loop (-m 'not slow').
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LEDGER_ENV = "CZ_SELFTEST_LEDGER"
#: Per principal, before the rate-limit phase.
BUDGET = {"chat": 50, "management": 25, "info": 90}

# --------------------------------------------------------------------------- the plugin side

_LEDGER: list[tuple[str, str, float, bool]] = []


def _install_ledger() -> None:
    from conformance.reference import ratelimit

    original = ratelimit.Limiter.decide

    def decide(self: Any, principal: str, group: Any) -> Any:
        # The key is the principal: this run keeps the default rate_key.
        decision = original(self, principal, group)
        _LEDGER.append((principal, str(group), time.time(), not decision.admitted))
        return decision

    ratelimit.Limiter.decide = decide  # type: ignore[method-assign]


if os.environ.get(LEDGER_ENV):
    # Patched at import (-p imports before pytest_configure starts the embedded server).
    _install_ledger()


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = os.environ.get(LEDGER_ENV)
    if folder and _LEDGER:
        Path(folder, f"ledger-{os.getpid()}.json").write_text(json.dumps(_LEDGER), encoding="utf-8")


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class DocumentedRun:
    result: subprocess.CompletedProcess[str]
    seconds: float
    junit: ET.Element
    phase: dict[str, Any]
    pacer: dict[str, Any] | None
    ledger: list[tuple[str, str, float, bool]]

    def before_phase(self) -> list[tuple[str, str, float, bool]]:
        return [entry for entry in self.ledger if entry[2] < self.phase["started_at"]]


@functools.cache
def documented_run(folder: Path) -> DocumentedRun:
    """``pytest conformance -n 2`` against the embedded server (documented limits)."""
    ledger_dir, basetemp, junit = folder / "ledger", folder / "basetemp", folder / "junit.xml"
    ledger_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZE_")}
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "conformance", "-n", "2", "-p", "no:cacheprovider",
            "-p", "tests.test_budget", f"--basetemp={basetemp}", f"--junitxml={junit}", "-q",
        ],
        cwd=ROOT,
        env={**env, LEDGER_ENV: str(ledger_dir)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.monotonic() - started
    entries: list[tuple[str, str, float, bool]] = []
    for path in ledger_dir.glob("ledger-*.json"):
        entries += [(str(p), str(g), float(t), bool(r)) for p, g, t, r in json.loads(path.read_text(encoding="utf-8"))]
    phase_path = basetemp / PHASE_FILE
    phase = json.loads(phase_path.read_text(encoding="utf-8")) if phase_path.is_file() else {}
    pacer_path = basetemp / PACER_FILE
    pacer = json.loads(pacer_path.read_text(encoding="utf-8")) if pacer_path.is_file() else None
    tree = ET.parse(junit).getroot() if junit.is_file() else ET.Element("none")
    return DocumentedRun(result, seconds, tree, phase, pacer, sorted(entries, key=lambda e: e[2]))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DocumentedRun:
    return documented_run(tmp_path_factory.mktemp("documented-run"))


def _tail(run: DocumentedRun) -> str:
    return run.result.stdout[-4000:] + run.result.stderr[-2000:]


def test_the_whole_suite_passes_with_two_workers(run: DocumentedRun) -> None:
    assert run.result.returncode == 0, _tail(run)
    assert " 0 FAIL, 0 WARN, 0 SKIP" in run.result.stdout, _tail(run)


def test_the_rate_limit_phase_ran_in_the_default_run(run: DocumentedRun) -> None:
    """Read from the JUnit file: the phase is part of the plain run, and passed."""
    cases = [c for c in run.junit.iter("testcase") if c.get("name", "").startswith("test_rate_limits")]
    assert [c.get("name") for c in cases] == ["test_rate_limits[default]"], _tail(run)
    (case,) = cases
    assert not [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
    assert float(case.get("time", "0")) >= 1.0  # it waited for BP-001, it did not return early
    requirements = {p.get("value") for p in case.iter("property") if p.get("name") == "requirement"}
    assert {"RATE-001", "RATE-002", "RATE-003", "RATE-004", "BP-001"} <= requirements


def test_the_phase_began_after_every_other_test(run: DocumentedRun) -> None:
    phase = run.phase
    assert phase, "no phase record: the rate-limit test did not run"
    assert not phase["timed_out"] and phase["done"] == phase["expected"] > 0
    assert phase["started_at"] >= phase["last_finished_at"]
    cases = [c for c in run.junit.iter("testcase") if not c.get("name", "").startswith("test_rate_limits")]
    assert len(cases) == phase["expected"]  # every other suite test was waited for


def test_each_principal_stays_within_the_budget_before_the_phase(run: DocumentedRun) -> None:
    counts = Counter((principal, group) for principal, group, _, _ in run.before_phase())
    assert counts, "the ledger is empty: the counting plugin did not run"
    over = {key: n for key, n in counts.items() if n > BUDGET[key[1]]}
    shown = ", ".join(f"{p} {g}: {n}" for (p, g), n in sorted(counts.items()))
    assert not over, f"over the budget {BUDGET}: {shown}"
    print(f"requests before the phase: {shown}")


def test_the_other_modules_stay_within_what_the_fuzz_plan_assumes(run: DocumentedRun) -> None:
    """``strategies.budget_examples`` plans a remote run's fuzz examples from what the
    other modules send with the first principal (``OTHER_REQUESTS``): this run's count,
    less the embedded fuzz plan's own requests, must not exceed it -- else a remote run
    against the documented limits would wait for a window it was planned not to need."""
    from conformance.oracle.profile import load_profile
    from conformance.oracle.strategies import EMBEDDED_EXAMPLES, FUZZ_SETUP, OTHER_REQUESTS

    counts = Counter(group for principal, group, _, _ in run.before_phase() if principal == "principal-1")
    assert counts, "the ledger is empty: the counting plugin did not run"
    for group in load_profile("doc").ratelimits.groups:
        fuzz = FUZZ_SETUP.get(group.name, 0) + sum(n for e, n in EMBEDDED_EXAMPLES.items() if e in group.endpoints)
        assert counts[group.name] - fuzz <= OTHER_REQUESTS[group.name], (
            f"{group.name}: the other modules sent {counts[group.name] - fuzz}, OTHER_REQUESTS says {OTHER_REQUESTS[group.name]}"
        )


def test_no_429_before_the_phase(run: DocumentedRun) -> None:
    refused = [(p, g) for p, g, _, was_refused in run.before_phase() if was_refused]
    assert not refused, f"{len(refused)} requests refused before the phase: {Counter(refused)}"
    during = [e for e in run.ledger if e[2] >= run.phase["started_at"]]
    assert any(e[3] for e in during), "the phase provoked no 429 at all"


def test_the_run_needed_no_waiting_before_the_phase(run: DocumentedRun) -> None:
    """Against the documented limits the pacer never waits and never meets a
    429 (its state exists once build_client hands out paced clients)."""
    if run.pacer is None:
        pytest.skip("the run's clients are not paced yet (conformance.plugin.build_client)")
    assert run.pacer.get("waited", {}) == {} and run.pacer.get("refusals", {}) == {}
