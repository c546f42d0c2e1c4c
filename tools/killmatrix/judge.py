"""One run's result, and the judgement of the whole matrix: recall, precision, one truth
per run, the tests no fault fails and the requirements no fault declares."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.killmatrix.plan import (
    COLLATERAL_LIMIT,
    FAIL,
    NOT_CONFORMANT,
    NOT_RUN,
    PROFILE,
    PROFILES,
    WARN,
    RunSpec,
    Subject,
)


@dataclass(frozen=True)
class RunResult:
    """What one suite run found: per requirement its outcome and per test its failures."""

    outcomes: Mapping[str, str] = field(default_factory=dict)  # requirement -> PASS/FAIL/WARN/SKIP/NOT RUN
    failing_tests: Mapping[str, frozenset[str]] = field(default_factory=dict)  # requirement -> nodeids with FAIL
    tests: frozenset[str] = frozenset()  # the suite tests the run collected
    errors: tuple[str, ...] = ()  # "nodeid (phase): message": tests that crashed instead of judging
    exit_code: int | None = None
    problem: str | None = None  # the run itself went wrong: timed out, crashed, no result
    status: str | None = None  # the verdict's status (results.json)
    #: JUnit test case ("classname::name") that failed or errored -> the requirement ids
    #: its failure text names; None when the run carries no JUnit reading.
    junit_failing: Mapping[str, frozenset[str]] | None = None

    def ids(self, outcome: str) -> frozenset[str]:
        return frozenset(rid for rid, o in self.outcomes.items() if o == outcome)

    def failed_tests(self) -> frozenset[str]:
        """Tests with at least one FAIL (any requirement) in this run."""
        return frozenset(n for nodes in self.failing_tests.values() for n in nodes)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RunResult:
        """From a job's run.json (see :func:`_run_document`)."""
        outcomes: dict[str, str] = {}
        failing: dict[str, frozenset[str]] = {}
        for entry in doc.get("requirements", ()):
            outcomes[entry["id"]] = entry["outcome"]
            nodes = frozenset(t["nodeid"] for t in entry.get("tests", ()) if t["outcome"] == FAIL)
            if nodes:
                failing[entry["id"]] = nodes
        junit = doc.get("junit")
        return cls(
            outcomes=outcomes,
            failing_tests=failing,
            tests=frozenset(doc.get("collected", ())),
            errors=tuple(doc.get("errors", ())),
            exit_code=doc.get("exit_code"),
            problem=doc.get("problem"),
            status=doc.get("status"),
            junit_failing=None if junit is None else {case: frozenset(ids) for case, ids in junit["failing"].items()},
        )


# --------------------------------------------------------------------------- judging the matrix


@dataclass(frozen=True)
class FaultRow:
    """One fault's verdict. ``problems`` (terminal only) may carry run details; every
    other field is deterministic and published."""

    name: str
    requirement: str
    level: str
    strict: bool
    killed: bool
    profile: str
    outcome: str  # the declared requirement's outcome in the fault's run
    killing_tests: tuple[str, ...]  # tests in which the declared requirement FAILed
    collateral: tuple[str, ...]  # other requirements that FAILed
    collateral_reason: str | None
    run_ok: bool  # the run finished, without a suite ERROR
    problems: tuple[str, ...]


@dataclass(frozen=True)
class PrecisionRow:
    """One server that must pass: what failed and warned, against what it declares."""

    name: str
    kind: str
    server: str
    profile: str
    reading: str | None
    description: str
    declares: tuple[str, ...]
    default_fail: tuple[str, ...]
    default_warn: tuple[str, ...]
    strict_fail: tuple[str, ...]
    run_ok: bool
    passed: bool
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Matrix:
    """The judged matrix of one profile; :attr:`problems` is empty exactly when it holds."""

    profile: str
    requirements: tuple[tuple[str, str], ...]  # (id, level) of every MUST/SHOULD of the profile
    faults: tuple[FaultRow, ...]
    precision: tuple[PrecisionRow, ...]
    tests: tuple[str, ...]  # every conformance test seen
    unkilled_tests: tuple[str, ...]
    unfaulted: tuple[str, ...]
    problems: tuple[str, ...]
    complete: bool  # every subject ran (no --only)

    @property
    def killed(self) -> int:
        return sum(1 for f in self.faults if f.killed)

    @property
    def passing(self) -> int:
        return sum(1 for p in self.precision if p.passed)

    @property
    def holds(self) -> bool:
        return not self.problems


def _run_problems(label: str, result: RunResult | None) -> list[str]:
    """What went wrong with the run itself: no result, a crash or timeout, a suite
    ERROR (a broken server must meet a FAIL, never a crash), a pytest usage error."""
    if result is None:
        return [f"`{label}`: no result"]
    found = [f"`{label}`: {result.problem}"] if result.problem else []
    found.extend(f"`{label}`: ERROR {e}" for e in result.errors)
    if result.exit_code not in (None, 0, 1) and not result.problem and not result.errors:
        found.append(f"`{label}`: the suite exited with {result.exit_code}")
    return found


def junit_case(nodeid: str) -> str:
    """A pytest node id as its JUnit test case, ``classname::name`` (the way pytest's
    junitxml names it: the path's ``/`` as ``.``, no ``.py``, the classes in the classname)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return f"{'.'.join(names[:-1])}::{names[-1]}"


def _truth_problems(label: str, result: RunResult | None) -> list[str]:
    """One truth: the exit code, the verdict's status and JUnit agree with the
    outcomes. Judged only on a run that finished and carries its JUnit reading."""
    if result is None or result.problem or result.junit_failing is None:
        return []
    failing = result.junit_failing
    fails = result.ids(FAIL)
    code = result.exit_code
    found = []
    if code:
        if not failing:
            found.append(f"`{label}`: exit {code} but no failing JUnit test case")
        if result.status != NOT_CONFORMANT:
            found.append(f"`{label}`: exit {code} but the verdict is {result.status}, not {NOT_CONFORMANT}")
    elif failing:
        found.append(f"`{label}`: exit 0 but {len(failing)} failing JUnit test case(s): {', '.join(sorted(failing))}")
    if fails and result.status != NOT_CONFORMANT:
        found.append(f"`{label}`: {', '.join(sorted(fails))} FAIL but the verdict is {result.status}")
    if fails and code == 0:
        found.append(f"`{label}`: {', '.join(sorted(fails))} FAIL but the suite exited 0")
    named = {rid for ids in failing.values() for rid in ids}
    found.extend(f"`{label}`: {rid} FAILs but no failing JUnit test case names it" for rid in sorted(fails - named))
    found.extend(
        f"`{label}`: {node} recorded a FAIL but is not a failing JUnit test case"
        for node in sorted(result.failed_tests())
        if junit_case(node) not in failing
    )
    return found


def judge_fault(subject: Subject, result: RunResult | None, levels: Mapping[str, str]) -> FaultRow:
    """Killed only when the declared requirement FAILs in the fault's run."""
    assert subject.requirement is not None and subject.level is not None
    rid, strict = subject.requirement, subject.level != "MUST"
    label = RunSpec(subject.name, strict).key
    run_problems = _run_problems(label, result)
    problems = list(run_problems) + _truth_problems(label, result)
    if rid not in levels:
        problems.append(f"{subject.name}: declares {rid}, which is not a MUST or SHOULD requirement of the {subject.profile} profile")
    elif levels[rid] != subject.level:
        problems.append(f"{subject.name}: declares {rid} as {subject.level}; the catalogue says {levels[rid]}")
    outcome = result.outcomes.get(rid, NOT_RUN) if result is not None else NOT_RUN
    killed = outcome == FAIL
    if not killed:
        problems.append(f"{subject.name}: not killed -- {rid} was {outcome} in `{label}`")
    collateral = tuple(sorted(result.ids(FAIL) - {rid})) if result is not None else ()
    if len(collateral) > COLLATERAL_LIMIT and not subject.collateral:
        problems.append(
            f"{subject.name}: {len(collateral)} collateral failures ({', '.join(collateral)}) and no written reason"
            f" (Fault.collateral) -- more than {COLLATERAL_LIMIT} need one"
        )
    return FaultRow(
        name=subject.name,
        requirement=rid,
        level=subject.level,
        strict=strict,
        killed=killed,
        profile=subject.profile,
        outcome=outcome,
        killing_tests=tuple(sorted(result.failing_tests.get(rid, ()))) if result is not None else (),
        collateral=collateral,
        collateral_reason=subject.collateral,
        run_ok=not run_problems,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class PrecisionRun:
    """One run of a server that must pass, judged alone (``--check`` re-runs one mode of
    a precision subject without the other): its FAIL and WARN, and what is wrong with it."""

    strict: bool
    fail: tuple[str, ...]
    warn: tuple[str, ...]
    run_ok: bool
    problems: tuple[str, ...]


def _outcome_problems(subject: Subject, result: RunResult | None, strict: bool) -> list[str]:
    """By default: any FAIL, a WARN of an undeclared id. Under --strict: a FAIL of an
    undeclared id, a declared id that does not FAIL."""
    if result is None:
        return []
    declares = subject.declares
    undeclared = " (not declared)" if declares else ""
    if not strict:
        found = [f"{subject.name}: FAIL {rid} by default" for rid in sorted(result.ids(FAIL))]
        found += [f"{subject.name}: WARN {rid} by default{undeclared}" for rid in sorted(result.ids(WARN)) if rid not in declares]
        return found
    fails = result.ids(FAIL)
    found = [f"{subject.name}: FAIL {rid} under --strict{undeclared}" for rid in sorted(fails) if rid not in declares]
    found += [
        f"{subject.name}: declared {rid} does not fail under --strict (it was {result.outcomes.get(rid, NOT_RUN)})"
        for rid in sorted(declares - fails)
    ]
    return found


def judge_precision_run(subject: Subject, result: RunResult | None, strict: bool, levels: Mapping[str, str]) -> PrecisionRun:
    """One mode's run of a precision subject, judged as :func:`judge_precision` judges it."""
    label = RunSpec(subject.name, strict).key
    run_problems = _run_problems(label, result)
    problems = run_problems + _truth_problems(label, result) + _outcome_problems(subject, result, strict)
    return PrecisionRun(
        strict=strict,
        fail=tuple(sorted(result.ids(FAIL))) if result is not None else (),
        warn=tuple(sorted(result.ids(WARN))) if result is not None else (),
        run_ok=not run_problems,
        problems=tuple(problems),
    )


def judge_precision(
    subject: Subject, default: RunResult | None, strict: RunResult | None, levels: Mapping[str, str]
) -> PrecisionRow:
    """The clean server and preferred variants: zero FAIL, zero WARN in both modes.
    Alternates: zero FAIL by default (WARN on declared ids only); under --strict the
    FAIL set is exactly the declared SHOULD ids."""
    run_problems = _run_problems(RunSpec(subject.name, False).key, default) + _run_problems(
        RunSpec(subject.name, True).key, strict
    )
    problems = list(run_problems)
    problems += _truth_problems(RunSpec(subject.name, False).key, default) + _truth_problems(
        RunSpec(subject.name, True).key, strict
    )
    declares = subject.declares
    wrong = sorted(rid for rid in declares if levels.get(rid) != "SHOULD")
    if wrong:
        problems.append(f"{subject.name}: declares {', '.join(wrong)}, which are not SHOULD requirements of the profile")
    problems += _outcome_problems(subject, default, False) + _outcome_problems(subject, strict, True)
    return PrecisionRow(
        name=subject.name,
        kind=subject.kind,
        server=subject.server,
        profile=subject.profile,
        reading=subject.reading,
        description=subject.description,
        declares=tuple(sorted(declares)),
        default_fail=tuple(sorted(default.ids(FAIL))) if default is not None else (),
        default_warn=tuple(sorted(default.ids(WARN))) if default is not None else (),
        strict_fail=tuple(sorted(strict.ids(FAIL))) if strict is not None else (),
        run_ok=not run_problems,
        passed=not problems,
        problems=tuple(problems),
    )


def _fault_key(s: Subject) -> str:
    return RunSpec(s.name, s.level != "MUST").key


def evaluate(
    chosen: Sequence[Subject],
    results: Mapping[str, RunResult],
    levels: Mapping[str, str],
    *,
    all_faults_declare: Iterable[str] | None = None,
    complete: bool = True,
    profile: str = PROFILE,
) -> Matrix:
    """Judge the runs of one profile's subjects. ``chosen``: the subjects of that
    profile; ``levels``: its MUST/SHOULD requirement id -> level. ``all_faults_declare``:
    the requirements of every registered fault of the profile (for the unfaulted list;
    defaults to the chosen faults'). ``complete``: every subject of the profile ran, so
    the lists of tests no fault fails and requirements no fault declares are judged (a
    run with ``--only`` judges its subjects alone). Only the chosen subjects' runs are
    read: another profile's runs collect other tests."""
    others = sorted(s.name for s in chosen if s.profile != profile)
    if others:
        raise ValueError(f"not subjects of the {profile} profile: {', '.join(others)}")
    keys = {RunSpec(s.name, strict).key for s in chosen for strict in (False, True)}
    results = {key: r for key, r in results.items() if key in keys}
    faults = sorted((judge_fault(s, results.get(_fault_key(s)), levels) for s in chosen if s.is_fault), key=lambda f: f.name)
    precision = [
        judge_precision(s, results.get(RunSpec(s.name, False).key), results.get(RunSpec(s.name, True).key), levels)
        for s in chosen
        if not s.is_fault
    ]
    tests = sorted({n for r in results.values() for n in r.tests})
    failed = {n for s in chosen if s.is_fault and (r := results.get(_fault_key(s))) is not None for n in r.failed_tests()}
    unkilled = tuple(n for n in tests if n not in failed) if complete else ()
    declared = set(all_faults_declare if all_faults_declare is not None else (f.requirement for f in faults))
    unfaulted = tuple(rid for rid in sorted(levels) if rid not in declared) if complete else ()
    problems = [p for f in faults for p in f.problems] + [p for row in precision for p in row.problems]
    problems.extend(f"no fault fails the test {n}" for n in unkilled)
    problems.extend(f"no fault declares {rid} ({levels[rid]})" for rid in unfaulted)
    if complete and not tests:
        problems.append("no run collected any conformance test")
    return Matrix(
        profile=profile,
        requirements=tuple(sorted(levels.items())),
        faults=tuple(faults),
        precision=tuple(precision),
        tests=tuple(tests),
        unkilled_tests=unkilled,
        unfaulted=unfaulted,
        problems=tuple(problems),
        complete=complete,
    )


def evaluate_profiles(
    chosen: Sequence[Subject],
    results: Mapping[str, RunResult],
    everything: Mapping[str, Subject],
    *,
    complete: bool = True,
    levels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Matrix]:
    """One judged matrix per profile that has a chosen subject, in PROFILES order, each
    against its own catalogue (``levels``: profile -> its MUST/SHOULD ids, read from the
    catalogue when not given) and its own faults of ``everything``: recall, precision,
    the tests no fault of the profile fails and its requirements without a fault."""
    matrices: dict[str, Matrix] = {}
    for profile in PROFILES:
        mine = [s for s in chosen if s.profile == profile]
        if not mine:
            continue
        matrices[profile] = evaluate(
            mine,
            results,
            levels[profile] if levels is not None else profile_levels(profile),
            all_faults_declare=[s.requirement for s in everything.values() if s.is_fault and s.profile == profile and s.requirement],
            complete=complete,
            profile=profile,
        )
    return matrices


def profile_levels(profile: str = PROFILE) -> dict[str, str]:
    """MUST and SHOULD requirement ids of the profile (active ones) -> level."""
    from conformance.oracle.catalogue import load_catalogue

    return {r.id: r.level for r in load_catalogue().for_profile(profile).values() if r.level in ("MUST", "SHOULD")}
