"""The verdict and the exit code of a conformance run, from its requirement results.

The verdict is computed from the per-requirement records of the oracle core
(:mod:`conformance.oracle.outcomes`), never from test pass/fail counts:

* ``NOT CONFORMANT`` -- a requirement failed outside the baseline (a MUST, or a
  SHOULD/MAY under ``--strict``), whatever else errored or did not run;
* ``INCONCLUSIVE`` -- otherwise, an ERROR occurred (a suite bug, a crashed fixture):
  the run cannot certify anything;
* ``INCOMPLETE`` -- otherwise, some MUST requirement did not run (skipped,
  deselected, stopped by ``-x``/``--maxfail``), with how many and which;
* ``NOT CONFORMANT`` -- otherwise, when requirements failed and the baseline excused
  every failure;
* ``CONFORMANT`` -- every MUST requirement of the profile was executed and passed.

The checks are made in that order (docs/reports.md says why): the status agrees with
the exit code -- a FAIL (exit 1) is NOT CONFORMANT, an ERROR without one (exit 3)
INCONCLUSIVE -- and with JUnit, where every
requirement that FAILs is a failing test (conformance.plugin). Every verdict line
carries all the counts, so an error or a requirement that did not run is still named
beside a failure.

Exit codes: 0 -- no FAIL outside the baseline and no ERROR (read the verdict: it
may say INCOMPLETE); 1 -- a FAIL outside the baseline, or a stale baseline entry;
3 -- no FAIL but an ERROR (the preflight's exit 3 comes from the plugin); 4 -- a
usage error; pytest's own 2 (interrupted) and 5 (nothing collected) pass through.

An ERROR is a test that failed with anything but ``RequirementFailed`` (or the
soft failures the plugin turns into a failed test): server misbehaviour is always
a FAIL, even in a fixture, because the fixture judged it through ``check``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pytest

from conformance.oracle.outcomes import Outcome, Record, summarise

__all__ = ["NOT_RUN", "XFAIL", "RequirementResult", "Status", "Verdict", "exit_code", "fold", "judge", "requirement_results"]

#: Outcomes beyond conformance.oracle.outcomes: a failure the baseline excused, and a
#: requirement no test judged.
XFAIL = "XFAIL"
NOT_RUN = "NOT RUN"

# How many ids a verdict line names before it writes "…".
_SHOWN_IDS = 5

class Status(StrEnum):
    CONFORMANT = "CONFORMANT"
    INCOMPLETE = "INCOMPLETE"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_CONFORMANT = "NOT CONFORMANT"


@dataclass(frozen=True)
class RequirementResult:
    """One requirement's outcome over the whole run.

    ``outcome`` is PASS / FAIL / WARN / SKIP as the records say (FAIL beats WARN
    beats PASS beats SKIP), XFAIL when every failing check was excused by the
    baseline, and NOT RUN when nothing judged it.
    """

    id: str
    level: str
    outcome: str
    tests: tuple[tuple[str, str], ...] = ()  # (node id, outcome in that test)
    findings: tuple[Record, ...] = ()  # the records that were not a PASS
    baseline_reasons: tuple[str, ...] = ()


def fold(records: Sequence[Record], excused: Callable[[Record], str | None]) -> tuple[str, tuple[str, ...]]:
    """The outcome of one requirement's records, and the baseline reasons used."""
    reasons = tuple(dict.fromkeys(reason for r in records if r.outcome is Outcome.FAIL and (reason := excused(r))))
    unexcused = [r for r in records if not (r.outcome is Outcome.FAIL and excused(r))]
    worst = next(iter(summarise(unexcused).values()), None)
    if worst is Outcome.FAIL:
        return str(worst), reasons
    if reasons:
        return XFAIL, reasons
    return (NOT_RUN if worst is None else str(worst)), ()


def requirement_results(
    records: Iterable[Record],
    levels: Mapping[str, str],
    expected: Iterable[str] = (),
    excused: Callable[[Record], str | None] = lambda record: None,
) -> dict[str, RequirementResult]:
    """Fold the records into one result per requirement: every id of ``expected``
    (NOT RUN when never judged) in its order, then any other judged id, sorted.
    ``excused(record)`` returns the baseline reason that excuses a FAIL, or None."""
    by_req: dict[str, list[Record]] = {}
    for record in records:
        by_req.setdefault(record.requirement, []).append(record)
    results = {}
    for rid in dict.fromkeys([*expected, *sorted(by_req)]):
        recs = by_req.get(rid, [])
        outcome, reasons = fold(recs, excused)
        tests = tuple(
            (nodeid, fold([r for r in recs if r.nodeid == nodeid], excused)[0])
            for nodeid in dict.fromkeys(r.nodeid for r in recs)
        )
        findings = tuple(r for r in recs if r.outcome is not Outcome.PASS)
        level = levels.get(rid) or (recs[0].level if recs else "MUST")
        results[rid] = RequirementResult(rid, level, outcome, tests, findings, reasons)
    return results


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    return shown + (", …" if len(ids) > _SHOWN_IDS else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Verdict:
    """The certification verdict and the facts behind it."""

    status: Status
    must_total: int
    failing: tuple[str, ...] = ()  # MUST requirements with a FAIL outside the baseline
    not_run: tuple[str, ...] = ()  # MUST requirements of the profile never executed
    failing_other: tuple[str, ...] = ()  # SHOULD/MAY requirements failing under --strict
    warnings: tuple[str, ...] = ()  # requirements that only warned
    baselined: tuple[str, ...] = ()  # requirements whose every failure the baseline excused
    errors: tuple[str, ...] = ()  # "node id (phase): message"
    stale: tuple[str, ...] = ()  # stale baseline entries

    @property
    def line(self) -> str:
        """``NOT CONFORMANT — 3 of 61 MUST requirements fail (CHAT-SSE-004, …); 2 SHOULD warnings; 1 baselined``."""
        m = self.must_total
        clauses = {
            "errors": f"{_plural(len(self.errors), 'error')} ({_ids([e.split(' ', 1)[0] for e in self.errors])})",
            "not_run": f"{len(self.not_run)} of {m} MUST requirements did not run ({_ids(self.not_run)})",
            "failing": f"{len(self.failing)} of {m} MUST requirements fail ({_ids(self.failing)})",
            "failing_other": f"{len(self.failing_other)} SHOULD/MAY requirements fail under --strict ({_ids(self.failing_other)})",
            "warnings": _plural(len(self.warnings), "SHOULD warning"),
            "baselined": f"{len(self.baselined)} baselined",
            "stale": f"{len(self.stale)} stale baseline entr{'y' if len(self.stale) == 1 else 'ies'}",
        }
        if self.status is Status.CONFORMANT:
            main = f"all {m} MUST requirements pass"
        elif self.status is Status.INCONCLUSIVE:
            main = clauses.pop("errors")
        elif self.status is Status.INCOMPLETE:
            main = clauses.pop("not_run")
        elif self.failing:
            main = clauses.pop("failing")
        elif self.failing_other:
            main = clauses.pop("failing_other")
        else:
            main = f"{len(self.baselined)} requirements fail, all baselined ({_ids(self.baselined)})"
            clauses.pop("baselined")
        extra = [text for name, text in clauses.items() if getattr(self, name)]
        return f"{self.status} — " + "; ".join([main, *extra])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": str(self.status), "line": self.line}
        for f in dataclasses.fields(self):
            if f.name != "status":
                data[f.name] = list(getattr(self, f.name)) if isinstance(getattr(self, f.name), tuple) else getattr(self, f.name)
        return data


def judge(
    results: Mapping[str, RequirementResult],
    must_ids: Iterable[str],
    errors: Sequence[str] = (),
    stale: Sequence[str] = (),
) -> Verdict:
    """The verdict over ``results``; ``must_ids`` are the profile's active MUST ids."""
    must = list(dict.fromkeys(must_ids))
    executed = {rid for rid, r in results.items() if r.outcome not in (NOT_RUN, str(Outcome.SKIP))}
    failing = [rid for rid, r in results.items() if r.outcome == Outcome.FAIL and r.level == "MUST"]
    facts = dict(
        must_total=len(dict.fromkeys([*must, *failing])),
        failing=tuple(failing),
        not_run=tuple(rid for rid in must if rid not in executed),
        failing_other=tuple(rid for rid, r in results.items() if r.outcome == Outcome.FAIL and r.level != "MUST"),
        warnings=tuple(rid for rid, r in results.items() if r.outcome == Outcome.WARN),
        baselined=tuple(rid for rid, r in results.items() if r.outcome == XFAIL),
        errors=tuple(errors),
        stale=tuple(stale),
    )
    # The order of docs/reports.md: a FAIL outside the baseline first, whatever else
    # errored or did not run (it is what exit code 1 says); then an ERROR (exit 3);
    # then a MUST that did not run; then failures the baseline excused (both exit 0).
    if facts["failing"] or facts["failing_other"]:
        status = Status.NOT_CONFORMANT
    elif facts["errors"]:
        status = Status.INCONCLUSIVE
    elif facts["not_run"]:
        status = Status.INCOMPLETE
    elif facts["baselined"]:
        status = Status.NOT_CONFORMANT
    else:
        status = Status.CONFORMANT
    return Verdict(status, **facts)  # type: ignore[arg-type]


def exit_code(pytest_status: int, verdict: Verdict) -> int:
    """The process exit code (see the module docstring and docs/reports.md)."""
    status = int(pytest_status)
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return status  # 2 interrupted, 3 internal error, 4 usage error, 5 nothing collected
    if verdict.failing or verdict.failing_other or verdict.stale:
        return 1
    if verdict.errors:
        return 3
    return 0
