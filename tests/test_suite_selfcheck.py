"""Self-check of the conformance suite: run it whole, as a user would, against the
embedded reference server, and hold it to its own contract (
the suite-module rules):

* every suite test passed, and no requirement was judged FAIL, WARN or SKIP;
* every suite test judged exactly the requirement ids its ``@pytest.mark.requirement``
  declares (the plugin's exchange requirements, ``EXCHANGE_REQUIREMENTS``, are judged
  on every answer by the plugin itself and are nobody's declaration);
* every MUST requirement of the run's profile in the catalogue passed at least once.

The suite runs once per session in a child process (``python <this file> OUT ARGS``):
a fresh interpreter is what a user runs, keeps the embedded server, its threads and the
imported suite modules out of this session, and lets the child register
:class:`RunCollector` -- a plugin object that writes, per test, the declared ids, every
judgement record (``conformance.plugin.RECORDS_ATTR`` on the reports) and the phase
outcomes to a JSON file. (``pytester`` is function-scoped, so it cannot serve a
module-scoped run.) Under xdist the first worker runs the suite and the others read its
result (a file lock in the run's base temp dir).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from conformance.keys import (
    RECORDS_ATTR,
    SETTINGS_KEY,
    SUITE_DIR,
    declared_requirements,
)
from conformance.oracle.catalogue import load_catalogue
from conformance.oracle.envelope_judge import all_exchange_requirements

EXCHANGE_REQUIREMENTS = all_exchange_requirements(load_catalogue())
from conformance.oracle.outcomes import Outcome, Record

#: Runs whole suites or servers for seconds: out of the fast loop (-m 'not slow').
pytestmark = pytest.mark.slow

#: The child run's overall bound: the whole suite, rate-limit phase included, is
#: meant to take well under this; a hang becomes a clear failure, not a stuck session.
RUN_TIMEOUT_SECONDS = 900
RESULT_FILE = "suite-selfcheck.json"
OUTPUT_FILE = "suite-selfcheck.out"
#: Environment the child must not inherit: a COZE_* target or key would point the run
#: away from the embedded server; PYTEST_* (addopts, disabled plugin autoload, xdist's
#: worker variables) would change how it runs.
DROPPED_ENV_PREFIXES = ("COZE_", "PYTEST_")
#: How much of the child's output a failure message quotes.
OUTPUT_TAIL = 3000


# --------------------------------------------------------------------------- the child run's collector


class RunCollector:
    """A pytest plugin object for the child run: per test, the declared requirement ids,
    every judgement record and the outcome of each phase, written to ``path`` as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, dict[str, Any]] = {}
        self.profile: str | None = None
        self.embedded = False

    def _test(self, nodeid: str) -> dict[str, Any]:
        return self.tests.setdefault(nodeid, {"declared": [], "records": [], "phases": {}})

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # trylast: after the conformance plugin checked the ids and deselected.
        for item in items:
            self._test(item.nodeid)["declared"] = list(declared_requirements(item))
        settings = config.stash.get(SETTINGS_KEY, None)
        if settings is not None:
            self.profile, self.embedded = settings.profile, settings.embedded

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self._test(report.nodeid)
        test["records"].extend(getattr(report, RECORDS_ATTR, None) or ())
        test["phases"][report.when] = report.outcome

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        document = {"exitstatus": int(exitstatus), "profile": self.profile, "embedded": self.embedded, "tests": self.tests}
        self.path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")


def _child_main(argv: list[str]) -> int:
    """``python test_suite_selfcheck.py OUT [pytest args]``: run pytest with the collector."""
    if not argv:
        raise SystemExit("usage: python test_suite_selfcheck.py RESULT.json [pytest args]")
    return int(pytest.main(argv[1:], plugins=[RunCollector(Path(argv[0]))]))


# --------------------------------------------------------------------------- the run, read


@dataclass(frozen=True)
class SuiteTestResult:
    nodeid: str
    declared: frozenset[str]
    records: tuple[Record, ...]
    phases: Mapping[str, str]

    @property
    def judged(self) -> frozenset[str]:
        return frozenset(r.requirement for r in self.records if r.outcome is not Outcome.SKIP)

    @property
    def outcome(self) -> str:
        """passed, failed, error (setup or teardown failed), skipped or not run."""
        if self.phases.get("setup") == "failed" or self.phases.get("teardown") == "failed":
            return "error"
        if "skipped" in (self.phases.get("setup"), self.phases.get("call")):
            return "skipped"
        return self.phases.get("call", "not run")


@dataclass(frozen=True)
class SuiteRun:
    exitstatus: int
    profile: str
    embedded: bool
    tests: tuple[SuiteTestResult, ...] = field(repr=False)
    output: str = field(repr=False)

    @classmethod
    def load(cls, result: Path, output: Path) -> SuiteRun:
        data = json.loads(result.read_text(encoding="utf-8"))
        tests = tuple(
            SuiteTestResult(
                nodeid,
                frozenset(test["declared"]),
                tuple(Record.from_dict(r) for r in test["records"]),
                dict(test["phases"]),
            )
            for nodeid, test in data["tests"].items()
        )
        return cls(data["exitstatus"], data["profile"], data["embedded"], tests, output.read_text(encoding="utf-8"))

    @property
    def records(self) -> list[Record]:
        return [r for t in self.tests for r in t.records]

    def tail(self) -> str:
        return self.output[-OUTPUT_TAIL:]


def _shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # xdist workers each get basetemp/popen-gwN; their common parent is this session's.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV_PREFIXES)}


def run_suite(folder: Path) -> SuiteRun:
    """Run the whole suite once in a child process; the result and output stay in ``folder``."""
    result, output = folder / RESULT_FILE, folder / OUTPUT_FILE
    command = [sys.executable, str(Path(__file__).resolve()), str(result), str(SUITE_DIR), "-p", "no:cacheprovider", "-rfEs"]
    try:
        child = subprocess.run(
            command,
            cwd=SUITE_DIR.parents[1],
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode("utf-8", "replace")
        pytest.fail(f"the suite run took more than {RUN_TIMEOUT_SECONDS} s; its output so far:\n{partial[-OUTPUT_TAIL:]}")
    output.write_text(child.stdout + child.stderr, encoding="utf-8")
    if not result.is_file():
        pytest.fail(
            f"the suite run (exit {child.returncode}) wrote no result; its output:\n{(child.stdout + child.stderr)[-OUTPUT_TAIL:]}"
        )
    return SuiteRun.load(result, output)


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    folder = _shared_folder(tmp_path_factory)
    with FileLock(str(folder / (RESULT_FILE + ".lock"))):
        if (folder / RESULT_FILE).is_file() and (folder / OUTPUT_FILE).is_file():
            run = SuiteRun.load(folder / RESULT_FILE, folder / OUTPUT_FILE)
        else:
            run = run_suite(folder)
    if not run.tests:
        pytest.fail(f"the suite run collected no test (exit {run.exitstatus}); its output:\n{run.tail()}")
    if not run.embedded:
        pytest.fail("the suite run did not use the embedded reference server")
    return run


def _listing(lines: Iterable[str]) -> str:
    return "\n  ".join(sorted(lines))


# --------------------------------------------------------------------------- the checks


def test_every_suite_test_passed(suite_run: SuiteRun) -> None:
    not_passed = [f"{t.nodeid}: {t.outcome}" for t in suite_run.tests if t.outcome != "passed"]
    if not_passed:
        pytest.fail(
            f"{len(not_passed)} of {len(suite_run.tests)} suite tests did not pass:\n  {_listing(not_passed)}\n"
            f"output tail:\n{suite_run.tail()}",
            pytrace=False,
        )
    if suite_run.exitstatus != 0:
        pytest.fail(f"the suite run exited {suite_run.exitstatus}:\n{suite_run.tail()}", pytrace=False)


def test_no_requirement_failed_warned_or_skipped(suite_run: SuiteRun) -> None:
    bad = [
        f"{r.outcome} {r.requirement} in {r.nodeid}: {r.detail or ''} (expected {r.expected}; actual {r.actual})"
        for r in suite_run.records
        if r.outcome is not Outcome.PASS
    ]
    if bad:
        pytest.fail(f"{len(bad)} judgements other than PASS:\n  {_listing(bad)}", pytrace=False)


def test_each_test_judges_exactly_what_it_declares(suite_run: SuiteRun) -> None:
    # Judging an undeclared id raises in the test itself; here a declared id that was
    # never judged (a dead check, a forgotten marker) shows too. Only tests that ran
    # to the end are compared: a failed or skipped one is the check above's to report.
    mismatches = []
    for test in suite_run.tests:
        if test.outcome != "passed":
            continue
        declared = test.declared - EXCHANGE_REQUIREMENTS
        judged = test.judged - EXCHANGE_REQUIREMENTS
        if declared != judged:
            parts = []
            if declared - judged:
                parts.append(f"declared, never judged: {sorted(declared - judged)}")
            if judged - declared:
                parts.append(f"judged, not declared: {sorted(judged - declared)}")
            mismatches.append(f"{test.nodeid}: {'; '.join(parts)}")
    if mismatches:
        pytest.fail(f"{len(mismatches)} tests judge other ids than they declare:\n  {_listing(mismatches)}", pytrace=False)
    if not any(t.outcome == "passed" for t in suite_run.tests):
        pytest.fail("no suite test passed: nothing was compared", pytrace=False)


def test_every_must_requirement_passed(suite_run: SuiteRun) -> None:
    musts = load_catalogue().for_profile(suite_run.profile).must()
    passed = {r.requirement for r in suite_run.records if r.outcome is Outcome.PASS}
    missing = [f"{rid}: {musts[rid].gloss}" for rid in musts if rid not in passed]
    if missing:
        pytest.fail(
            f"{len(missing)} of {len(musts)} MUST requirements of profile {suite_run.profile!r} "
            f"never passed in the run:\n  {_listing(missing)}",
            pytrace=False,
        )


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
