"""The kill matrix: the suite's recall and precision, requirement by requirement (issue 7).

    python -m conformance.killmatrix [--jobs N] [--only NAME ...] [--write | --check]

The suite runs once per fault of the reference server (``conformance/reference/faults.py``)
and once per wire variant (``conformance/reference/variants.py``), each time against a
fresh server (fresh rate-limit budget), plus the clean reference server and the
independent server of ``tests/independent/``. Every run is a subprocess of its own: a
small job (this module with ``--job``) starts the server in-process and runs the suite
with ``pytest.main`` against it -- a 10 ms model delay, a short rate window, five fuzz
examples, short deadlines, every test run.

What a run proves (README, "Kill matrix"):

* **recall** -- a fault is *killed* only when the requirement it declares gets FAIL
  through a check attributed to that id: MUST faults in a default run, SHOULD faults
  under ``--strict``. Another requirement failing does not count; it is listed as the
  fault's collateral (more than :data:`COLLATERAL_LIMIT` needs the fault's written reason).
* **precision** -- the clean server and every ``preferred`` variant pass with zero FAIL
  and zero WARN, by default and under ``--strict``; every ``alternate`` variant (and the
  independent server, which takes alternate readings) has zero FAIL by default and under
  ``--strict`` fails exactly the SHOULD ids it declares.
* every conformance test is failed by at least one fault, and every MUST and SHOULD
  requirement of the profile has a fault.

The runner exits 1, saying why, when any of these does not hold (or a run crashed,
timed out, or ended in a suite ERROR: a broken server must meet a FAIL, never a crash).
``--write`` publishes ``docs/kill-matrix.json`` and ``docs/kill-matrix.md`` (sorted, no
times); ``--check`` computes them again and fails when the committed files differ.

The outcomes are read from each run's ``results.json`` (conformance/report.py): per
requirement its outcome and its outcome in each test, the tests that ERRORed and the
verdict's status; and from its ``junit.xml`` the failing test cases, with the
requirements each one's failure names. Every run must tell one truth: a non-zero exit
comes with a failing JUnit test case and a NOT CONFORMANT verdict, exit 0 with none, and
every requirement that FAILs -- and every test that recorded a FAIL -- is a failing
JUnit test case naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.report import REPORT_FILES, Status

__all__ = [
    "COLLATERAL_LIMIT",
    "DOC_JSON",
    "DOC_MD",
    "FaultRow",
    "Matrix",
    "PrecisionRow",
    "RunResult",
    "RunSpec",
    "Subject",
    "evaluate",
    "main",
    "matrix_document",
    "plan",
    "render_markdown",
    "subjects",
]

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
DOC_JSON = ROOT / "docs" / "kill-matrix.json"
DOC_MD = ROOT / "docs" / "kill-matrix.md"
FORMAT_VERSION = 1
PROFILE = "doc"

#: Collateral failures a fault may cause without a written reason (issue 7, item 4).
COLLATERAL_LIMIT = 5

#: Server knobs of every reference run. A short rate window, so that a run's rate-limit
#: phase never waits a documented minute for a budget to come back -- four seconds, not
#: less: the phase's burst must send its 2N + 1 requests (N the documented limit, up to
#: 100; 2N + 1 because a fixed-window limiter admits N on each side of a window's edge)
#: within three quarters of one window, and with five runs sharing two cores and slow
#: wire forms (1-to-7-byte writes) that takes up to about three seconds in-process. A
#: model delay of 10 ms a token, not 0: with 0 a whole answer is written before the
#: cancel test's cancel arrives, and whether it lands mid-answer (judged) or after
#: (SKIP) then depends on the machine's load -- the published matrix would differ from
#: run to run.
#: Limits half the documented ones (the same ratio between groups): a burst of 2N + 1
#: requests must leave within three quarters of a window, and the documented 60/30/100
#: bursts (423 requests at once) take longer than that on a loaded 2-core machine, while
#: the pacer's sustained budget (30 chats per 4 s) still never holds a run back.
MATRIX_LIMITS: Mapping[str, int] = {"chat": 30, "management": 15, "info": 50}
BASE_KNOBS: Mapping[str, Any] = {
    "token_delay": 0.01,
    "rate_window": 4.0,
    **{f"{group}_limit": limit for group, limit in MATRIX_LIMITS.items()},
}
#: Suite options of every run: few fuzz examples, and deadlines short enough that a
#: stream that never ends costs seconds (the faults' endless streams last longer).
#: A fixed ``--hypothesis-seed``: the fuzz tests draw the same cases in every run, so the
#: published matrix (collateral included) is the same from every fresh run.
#: ``--insecure`` changes nothing on a plain-http target except that no client loads
#: the system CA bundle (each of ~80 clients of a run did: 2 s of a 4 s run).
#: ``--rate-window``: the server's window, so the pacer and the rate-limit phase wait
#: seconds where a deployment's minute would cost a minute.
SUITE_ARGS: tuple[str, ...] = (
    "--fuzz-examples", "5", "--stream-timeout", "5", "--request-timeout", "5", "--insecure",
    "--hypothesis-seed", "0", "--rate-window", f"{BASE_KNOBS['rate_window']:g}",
    *(arg for group, limit in MATRIX_LIMITS.items() for arg in ("--rate-limit", f"{group}={limit}")),
)
#: Suite options of a ``--strict`` run, where the SHOULD requirements are judged: also
#: the exact rate-limit checks (RATE-005, "at least the documented limit admitted"),
#: which wait one idle rate window first -- four seconds here, so only where they count.
STRICT_ARGS: tuple[str, ...] = ("--strict", "--ratelimit-exact")
#: pytest options of a job: only results.json is read, so the HTML and Allure reports
#: (pytest-html, allure-pytest) are not written -- they cost a second per run.
JOB_PYTEST_ARGS: tuple[str, ...] = ("-p", "no:cacheprovider", "-p", "no:html", "-p", "no:allure_pytest", "-q", "--no-header")
#: Runs at a time. Most of a run is waiting (the rate window, Retry-After, streams), not
#: computing (a run uses about a third of a core): five at a time keep two cores busy.
JOBS = 5
#: One run's wall-clock bound; a run that exceeds it is killed and reported.
RUN_TIMEOUT = 300.0

CLEAN = "clean"
#: The names of generated variants begin with this (conformance/derived_variants.py).
GENERATED_PREFIX = "pairwise_"
#: The READING cell of a generated variant: its levels' rows are in its description.
GENERATED = "generated: pairwise combination of derived forms"
INDEPENDENT = "independent"
#: The independent server takes the other legal reading wherever READING leaves one (its
#: module docstring has the table); these are the SHOULD requirements that breaks: auth
#: by class (AUTH-003/004), only body conversation_id honoured (CHAT-CONV-002), no start
#: events (CHAT-SSE-005), terminal event "done" (CHAT-SSE-013), no "event" key in
#: payloads (CHAT-SSE-016), msg "ok" (ENV-002), error envelopes without data (ERR-002)
#: and with HTTP 200 (ERR-003).
INDEPENDENT_DECLARES = frozenset(
    {"AUTH-003", "AUTH-004", "CHAT-CONV-002", "CHAT-SSE-005", "CHAT-SSE-013", "CHAT-SSE-016", "ENV-002", "ERR-002", "ERR-003"}
)

FAIL, WARN, PASS, SKIP, NOT_RUN = "FAIL", "WARN", "PASS", "SKIP", "NOT RUN"
RUN_FILE = "run.json"
RESULTS_FILE = REPORT_FILES["results"]
JUNIT_FILE = REPORT_FILES["junit"]
NOT_CONFORMANT = str(Status.NOT_CONFORMANT)


# --------------------------------------------------------------------------- subjects and plan


@dataclass(frozen=True)
class Subject:
    """What one server of the matrix is: the clean server, a fault, or a variant."""

    name: str
    kind: str  # "clean" | "fault" | "preferred" | "alternate"
    server: str = "reference"  # or "independent"
    knobs: Mapping[str, Any] = field(default_factory=dict)
    requirement: str | None = None  # faults: the requirement the fault breaks
    level: str | None = None  # faults: that requirement's level, as the fault declares it
    declares: frozenset[str] = frozenset()  # alternates: the SHOULD ids failing under --strict
    collateral: str | None = None  # faults: why more than COLLATERAL_LIMIT others may fail
    description: str = ""
    reading: str | None = None  # variants: the READING.md row

    @property
    def is_fault(self) -> bool:
        return self.kind == "fault"


@dataclass(frozen=True)
class RunSpec:
    """One suite run: a subject, by default or under ``--strict``."""

    subject: str
    strict: bool

    @property
    def key(self) -> str:
        return f"{self.subject}{' --strict' if self.strict else ''}"


def subjects(
    faults: Mapping[str, Any] | None = None,
    variants: Mapping[str, Any] | None = None,
    generated: Sequence[Any] | None = None,
) -> dict[str, Subject]:
    """Every subject by name: clean, the independent server, the named variants, the
    generated variants (conformance/derived_variants.py), the faults."""
    if generated is None:
        from conformance.derived_variants import generate

        generated = generate()
    if faults is None:
        from conformance.reference.faults import all_faults

        faults = all_faults()
    if variants is None:
        from conformance.reference.variants import all_variants

        variants = all_variants()
    found: dict[str, Subject] = {
        CLEAN: Subject(CLEAN, "clean", description="The reference server as configured by default."),
        INDEPENDENT: Subject(
            INDEPENDENT,
            "alternate",
            server="independent",
            declares=INDEPENDENT_DECLARES,
            description="tests/independent/server.py: stdlib http.server, HTTP/1.0, written from the page alone;"
            " takes the reading the reference server does not wherever READING leaves a choice (its module"
            " docstring's table): auth by class, only body conversation_id, integer conversation/message ids,"
            " string chat and bot ids, no start events, `error`/`done` events, no payload `event` key, verbose and"
            " follow_up messages beside the answer, BOM/retry/data-less ping/id/multi-line data/CRLF framing with"
            " CR and LF in separate writes, kept open after `done`, msg \"ok\", cancel `data: null`, errors with"
            " HTTP 200 and no data, 201 for a create, 400/404 for unknown/another's ids, a new conversation for an"
            " unseen id, chat.completed then the close after a cancel, 400 for a late cancel, a fixed-window"
            " limiter per user_id not counting errors with a dated Retry-After, the run always an envelope.",
            reading="Every \"Known ambiguities\" row (tests/independent/server.py docstring)",
        ),
    }
    for v in variants.values():
        if v.name in found:
            raise ValueError(f"variant name {v.name!r} is taken")
        found[v.name] = Subject(
            v.name, v.kind, knobs=dict(v.knobs), declares=frozenset(v.declares), description=v.description, reading=v.reading
        )
    for g in generated:
        if g.name in found:
            raise ValueError(f"generated variant name {g.name!r} is taken")
        found[g.name] = Subject(
            g.name, g.kind, knobs=dict(g.knobs), declares=frozenset(g.declares), description=g.description, reading=GENERATED
        )
    for f in faults.values():
        if f.name in found:
            raise ValueError(f"fault name {f.name!r} is also a variant's (or reserved)")
        found[f.name] = Subject(
            f.name,
            "fault",
            knobs={"faults": frozenset({f.name})},
            requirement=f.requirement,
            level=f.level,
            collateral=f.collateral,
            description=f.description,
        )
    return found


def plan(chosen: Iterable[Subject]) -> list[RunSpec]:
    """The runs: a MUST fault by default, a SHOULD fault under --strict (issue 7: SHOULD
    faults are killed under --strict); every other subject in both modes."""
    specs: list[RunSpec] = []
    for s in chosen:
        if s.is_fault:
            specs.append(RunSpec(s.name, strict=s.level != "MUST"))
        else:
            specs.extend((RunSpec(s.name, strict=False), RunSpec(s.name, strict=True)))
    return specs


# --------------------------------------------------------------------------- one run's result


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
    """The judged matrix; :attr:`problems` is empty exactly when the matrix holds."""

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
    """Killed only when the declared requirement FAILs in the fault's run (issue 7)."""
    assert subject.requirement is not None and subject.level is not None
    rid, strict = subject.requirement, subject.level != "MUST"
    label = RunSpec(subject.name, strict).key
    run_problems = _run_problems(label, result)
    problems = list(run_problems) + _truth_problems(label, result)
    if rid not in levels:
        problems.append(f"{subject.name}: declares {rid}, which is not a MUST or SHOULD requirement of the {PROFILE} profile")
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
        outcome=outcome,
        killing_tests=tuple(sorted(result.failing_tests.get(rid, ()))) if result is not None else (),
        collateral=collateral,
        collateral_reason=subject.collateral,
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
    default_fail = sorted(default.ids(FAIL)) if default is not None else []
    default_warn = sorted(default.ids(WARN)) if default is not None else []
    strict_fail = sorted(strict.ids(FAIL)) if strict is not None else []
    undeclared = " (not declared)" if declares else ""
    problems.extend(f"{subject.name}: FAIL {rid} by default" for rid in default_fail)
    problems.extend(f"{subject.name}: WARN {rid} by default{undeclared}" for rid in default_warn if rid not in declares)
    problems.extend(f"{subject.name}: FAIL {rid} under --strict{undeclared}" for rid in strict_fail if rid not in declares)
    if strict is not None:
        problems.extend(
            f"{subject.name}: declared {rid} does not fail under --strict (it was {strict.outcomes.get(rid, NOT_RUN)})"
            for rid in sorted(declares - set(strict_fail))
        )
    return PrecisionRow(
        name=subject.name,
        kind=subject.kind,
        server=subject.server,
        reading=subject.reading,
        description=subject.description,
        declares=tuple(sorted(declares)),
        default_fail=tuple(default_fail),
        default_warn=tuple(default_warn),
        strict_fail=tuple(strict_fail),
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
) -> Matrix:
    """Judge every run. ``levels``: MUST/SHOULD requirement id -> level for the profile.
    ``all_faults_declare``: the requirements of every registered fault (for the
    unfaulted list; defaults to the chosen faults'). ``complete``: every subject ran, so
    the lists of tests no fault fails and requirements no fault declares are judged (a
    run with ``--only`` judges its subjects alone)."""
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
        requirements=tuple(sorted(levels.items())),
        faults=tuple(faults),
        precision=tuple(precision),
        tests=tuple(tests),
        unkilled_tests=unkilled,
        unfaulted=unfaulted,
        problems=tuple(problems),
        complete=complete,
    )


def profile_levels(profile: str = PROFILE) -> dict[str, str]:
    """MUST and SHOULD requirement ids of the profile (active ones) -> level."""
    from conformance.catalogue import load_catalogue

    return {r.id: r.level for r in load_catalogue().for_profile(profile).values() if r.level in ("MUST", "SHOULD")}


# --------------------------------------------------------------------------- publishing


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def matrix_document(matrix: Matrix, factors: Sequence[Any] = ()) -> dict[str, Any]:
    """docs/kill-matrix.json: sorted, no times, no ports, no free text from a run --
    the same from every fresh run of the same code. ``factors``: what the generated
    variants were derived from (conformance/derived_variants.py)."""
    by_req: dict[str, list[FaultRow]] = {}
    for f in matrix.faults:
        by_req.setdefault(f.requirement, []).append(f)
    return {
        "format_version": FORMAT_VERSION,
        "profile": PROFILE,
        "command": "python -m conformance.killmatrix --write",
        "summary": {
            "faults": len(matrix.faults),
            "killed": matrix.killed,
            "recall": _percent(matrix.killed, len(matrix.faults)),
            "precision_servers": len(matrix.precision),
            "precision_passed": matrix.passing,
            "precision": _percent(matrix.passing, len(matrix.precision)),
            "requirements": len(matrix.requirements),
            "tests": len(matrix.tests),
            "unkilled_tests": len(matrix.unkilled_tests),
            "unfaulted_requirements": len(matrix.unfaulted),
            "holds": matrix.holds,
        },
        "requirements": [
            {"id": rid, "level": level, "faults": [{"name": f.name, "killed": f.killed} for f in by_req.get(rid, [])]}
            for rid, level in matrix.requirements
        ],
        "faults": [
            {
                "name": f.name,
                "requirement": f.requirement,
                "level": f.level,
                "strict": f.strict,
                "killed": f.killed,
                "outcome": f.outcome,
                "killing_tests": list(f.killing_tests),
                "collateral": list(f.collateral),
                "collateral_reason": f.collateral_reason,
                "run_ok": f.run_ok,
            }
            for f in matrix.faults
        ],
        "precision": [
            {
                "name": p.name,
                "kind": p.kind,
                "server": p.server,
                "reading": p.reading,
                "description": p.description,
                "declares": list(p.declares),
                "default_fail": list(p.default_fail),
                "default_warn": list(p.default_warn),
                "strict_fail": list(p.strict_fail),
                "run_ok": p.run_ok,
                "passed": p.passed,
            }
            for p in matrix.precision
        ],
        "unkilled_tests": list(matrix.unkilled_tests),
        "unfaulted_requirements": list(matrix.unfaulted),
        "generated": {
            "variants": sum(1 for p in matrix.precision if p.reading == GENERATED),
            "factors": [
                {
                    "name": f.name,
                    "source": f.source,
                    "levels": [level.label for level in f.levels],
                    "declares": sorted({rid for level in f.levels for rid in level.declares}),
                }
                for f in factors
            ],
        },
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids) or "—"


def render_markdown(doc: Mapping[str, Any]) -> str:
    """docs/kill-matrix.md, from the JSON document alone (so the two never disagree)."""
    s = doc["summary"]
    out = [
        "# Kill matrix",
        "",
        "<!-- Generated by `python -m conformance.killmatrix --write`; CI runs `--check`. Do not edit. -->",
        "",
        f"The conformance suite (profile `{doc['profile']}`), run once per fault of the reference server"
        " (`conformance/reference/faults_*.py`) and once per legal wire variant (`conformance/reference/variants.py`),"
        " each against a fresh server, plus the clean reference server and the independent server"
        " (`tests/independent/server.py`). A fault is **killed** only when the requirement it declares FAILs through"
        " a check attributed to that id (MUST faults in a default run, SHOULD faults under `--strict`); failures of"
        f" other requirements are its *collateral* (more than {COLLATERAL_LIMIT} need a written reason)."
        " How it runs: `conformance/killmatrix.py`.",
        "",
        "## Summary",
        "",
        f"- **Recall**: {s['killed']} of {s['faults']} faults killed ({s['recall']}).",
        f"- **Precision**: {s['precision_passed']} of {s['precision_servers']} servers that must pass do"
        f" ({s['precision']}): the clean reference server, the named and the generated variants and the"
        " independent server.",
        f"- Requirements (MUST and SHOULD of the profile): {s['requirements']}; without a fault:"
        f" {s['unfaulted_requirements']}.",
        f"- Conformance tests: {s['tests']}; failed by no fault: {s['unkilled_tests']}.",
        f"- The matrix {'holds' if s['holds'] else '**does not hold**'}.",
        "",
        "## Requirements × faults",
        "",
        "✅ killed, ❌ not killed.",
        "",
        "| Requirement | Level | Faults |",
        "|---|---|---|",
    ]
    for r in doc["requirements"]:
        faults = " · ".join(f"{'✅' if f['killed'] else '❌'} `{f['name']}`" for f in r["faults"]) or "**none**"
        out.append(f"| {r['id']} | {r['level']} | {faults} |")
    out += [
        "",
        "## Faults",
        "",
        "*Run*: the suite's mode. *Killing tests*: tests in which the declared requirement FAILed.",
        "",
        "| Fault | Requirement | Run | Killed | Killing tests | Collateral |",
        "|---|---|---|---|---|---|",
    ]
    reasons = []
    for f in doc["faults"]:
        collateral = _ids(f["collateral"])
        if f["collateral_reason"] and len(f["collateral"]) > COLLATERAL_LIMIT:
            reasons.append(f)
            collateral += " (reason below)"
        killed = "✅" if f["killed"] else f"❌ ({f['outcome']})"
        if not f["run_ok"]:
            killed += " — the run went wrong"
        mode = "`--strict`" if f["strict"] else "default"
        out.append(
            f"| `{f['name']}` | {f['requirement']} ({f['level']}) | {mode} | {killed} | {len(f['killing_tests'])}"
            f" | {_cell(collateral)} |"
        )
    if reasons:
        out += ["", "### Collateral reasons", ""]
        out += [f"- `{f['name']}`: {_cell(f['collateral_reason'])}" for f in reasons]
    out += [
        "",
        "## Precision: servers that must pass",
        "",
        "Clean and `preferred`: zero FAIL and zero WARN, by default and under `--strict`. `alternate`: zero FAIL by"
        " default, and under `--strict` exactly the declared SHOULD requirements fail.",
        "",
        "| Server | Kind | READING row | Declares | FAIL / WARN by default | FAIL under `--strict` | Passes | What it does |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in doc["precision"]:
        verdict = "✅" if p["passed"] else "❌" + ("" if p["run_ok"] else " — the run went wrong")
        out.append(
            f"| `{p['name']}` | {p['kind']} | {_cell(p['reading'] or '—')} | {_ids(p['declares'])}"
            f" | {_ids(p['default_fail'])} / {_ids(p['default_warn'])} | {_ids(p['strict_fail'])} | {verdict}"
            f" | {_cell(p['description'])} |"
        )
    generated = doc.get("generated", {"variants": 0, "factors": []})
    factors = generated["factors"]
    out += [
        "",
        "## Generated variants",
        "",
        f"{generated['variants']} of the servers above (`pairwise_NN`) are generated, not listed"
        " (`conformance/derived_variants.py`): each combines one form of every one of"
        f" {len(factors)} factors, so that every pair of forms of every two factors meets in at least one server"
        " (pairwise). The factors come from the data the checks read, not from a list of variants:"
        f" {sum(1 for f in factors if f['source'].startswith('READING') and ' schema ' not in f['source'] and 'profile' not in f['source'])}"
        " from the READING rows' readings (each server knob a named variant sets alone, with every value the named"
        f" variants give it), {sum(1 for f in factors if 'profile [[conversation.form]]' in f['source'])} from the"
        " profile's conversation forms (each honoured or ignored, never all ignored), and"
        f" {sum(1 for f in factors if ' schema ' in f['source'])} from the response and event schemas (a field"
        " the schema does not require sent absent and `null`; a field with no constraint also as a string, an array"
        " and an object; an id of two JSON types in the other). A generated server passes by default and under"
        " `--strict` fails exactly the SHOULD requirements its forms declare.",
        "",
        "| Factor | Forms (the first is the reference's own) | Declares | Source |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {_cell(f['name'])} | {_cell(' · '.join(f['levels']))} | {_ids(f['declares'])} | {_cell(f['source'])} |"
        for f in factors
    ]
    out += ["", "## Conformance tests no fault fails", ""]
    out += [f"- `{n}`" for n in doc["unkilled_tests"]] or ["None."]
    out += ["", "## Requirements without a fault", ""]
    out += [f"- {rid}" for rid in doc["unfaulted_requirements"]] or ["None."]
    return "\n".join(out) + "\n"


def document_text(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- the job (one run, in its own process)


def _fresh_principals() -> list[tuple[str, str, str]]:
    """(name, api_key, session_key) of two principals with fresh random secrets."""
    return [(name, secrets.token_urlsafe(18), secrets.token_urlsafe(18)) for name in ("alice", "bob")]


@contextlib.contextmanager
def _serve(subject: Subject) -> Iterator[dict[str, str]]:
    """Start the subject's server; yield the COZE_* environment of the suite."""
    people = _fresh_principals()
    if subject.server == INDEPENDENT:
        sys.path.insert(0, str(ROOT))  # tests/ is not a package of the distribution
        from tests.independent.server import FixedWindowLimiter, IndependentServer

        server = IndependentServer(principals={n: (k, s) for n, k, s in people}, token_delay=float(BASE_KNOBS["token_delay"]))
        # The page's minute-long window would make the rate-limit phase wait a minute for
        # its budget; the server's own limiter with the matrix's short window instead.
        server.limiter = FixedWindowLimiter(MATRIX_LIMITS, window=float(BASE_KNOBS["rate_window"]))
        server.start()
        stop: Callable[[], None] = server.stop
        url = server.url
    else:
        from conformance.reference import PrincipalConfig, ReferenceServer, ServerConfig

        config = ServerConfig(
            principals=tuple(PrincipalConfig(n, k, s) for n, k, s in people), **{**BASE_KNOBS, **subject.knobs}
        )
        ref = ReferenceServer(config).start()
        stop, url = ref.stop, ref.url
    try:
        (_, k1, s1), (_, k2, s2) = people
        yield {
            "COZE_TARGET_URL": url,
            "COZE_API_KEY": k1,
            "COZE_SESSION_KEY": s1,
            "COZE_API_KEY_2": k2,
            "COZE_SESSION_KEY_2": s2,
        }
    finally:
        stop()


class _Recorder:
    """A pytest plugin of the job: the suite tests the run collected (results.json
    names only the tests that judged something)."""

    def __init__(self) -> None:
        self.collected: list[str] = []

    def pytest_collection_finish(self, session: Any) -> None:
        from conformance.plugin import SUITE_DIR

        self.collected = [item.nodeid for item in session.items if SUITE_DIR in Path(str(item.path)).resolve().parents]


def _junit_failing(path: Path, known: Iterable[str]) -> dict[str, list[str]]:
    """The failed or errored test cases of a JUnit file ("classname::name"), each with
    the ids of ``known`` that its failure's message and text name."""
    import xml.etree.ElementTree as ET

    # An id as a whole word: CHAT-RESP-001, not a prefix of CHAT-RESP-0010.
    patterns = {rid: re.compile(rf"(?<![\w-]){re.escape(rid)}(?![\w-])") for rid in known}
    failing: dict[str, list[str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        bad = [child for child in case if child.tag in ("failure", "error")]
        if bad:
            text = "\n".join(f"{child.get('message') or ''}\n{child.text or ''}" for child in bad)
            key = f"{case.get('classname') or ''}::{case.get('name') or ''}"
            named = {rid for rid, pattern in patterns.items() if pattern.search(text)}
            failing[key] = sorted(set(failing.get(key, ())) | named)
    return failing


def _run_document(collected: Sequence[str], report_dir: Path, exit_code: int) -> dict[str, Any]:
    """run.json: from the run's results.json (conformance/report.py), per requirement
    its outcome and its outcome in each test, the tests that ERRORed and the verdict's
    status; from its junit.xml the failing test cases and the requirements each names;
    plus the collected tests and the exit code. No results.json, or no junit.xml, is the
    run's problem."""
    document: dict[str, Any] = {"exit_code": exit_code, "collected": list(collected)}
    results_path = report_dir / RESULTS_FILE
    if not results_path.is_file():
        document["problem"] = f"the suite wrote no {RESULTS_FILE} (exit {exit_code})"
        return document
    results = json.loads(results_path.read_text(encoding="utf-8"))
    document["requirements"] = [
        {"id": r["id"], "outcome": r["outcome"], "tests": r.get("tests", [])} for r in results["requirements"]
    ]
    document["errors"] = [f"{e['nodeid']} ({e['when']}): {e['message']}" for e in results.get("errors", [])]
    document["status"] = results.get("verdict", {}).get("status")
    junit_path = report_dir / JUNIT_FILE
    if not junit_path.is_file():
        document["problem"] = f"the suite wrote no {JUNIT_FILE} (exit {exit_code})"
        return document
    document["junit"] = {"failing": _junit_failing(junit_path, (r["id"] for r in results["requirements"]))}
    return document


def run_job(spec: RunSpec, report_dir: Path) -> int:
    """One run in this process: the subject's server, then the suite against it."""
    import pytest

    # Deriving the generated variants costs half a second: only a generated run needs them.
    subject = subjects(generated=None if spec.subject.startswith(GENERATED_PREFIX) else ())[spec.subject]
    report_dir.mkdir(parents=True, exist_ok=True)
    for name in [n for n in os.environ if n.startswith("COZE_") or n == "PYTEST_ADDOPTS"]:
        del os.environ[name]  # the caller's deployment settings must not leak into a run
    recorder = _Recorder()
    with _serve(subject) as env:
        os.environ.update(env)
        # A base temp dir of its own: concurrent runs numbering and pruning folders in
        # the shared /tmp/pytest-of-<user> race, and a lost race is a ResourceWarning
        # (pytest's find_prefixed) that filterwarnings=error turns into a crash.
        args = ["conformance", *JOB_PYTEST_ARGS, *SUITE_ARGS, "--report-dir", str(report_dir), "--basetemp", str(report_dir / "tmp")]
        if spec.strict:
            args.extend(STRICT_ARGS)
        code = int(pytest.main(args, plugins=[recorder]))
    document = _run_document(recorder.collected, report_dir, code)
    (report_dir / RUN_FILE).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- running the matrix


@dataclass
class _Progress:
    total: int
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self, key: str, seconds: float, result: RunResult) -> None:
        with self.lock:
            self.done += 1
            what = result.problem or f"{len(result.ids(FAIL))} FAIL, {len(result.ids(WARN))} WARN"
            sys.stderr.write(f"[{self.done:>3}/{self.total}] {key:<44} {seconds:6.1f} s  {what}\n")
            sys.stderr.flush()


def _job_environment(pycache: Path) -> dict[str, str]:
    """The jobs' environment: bytecode (pytest's rewritten modules too) cached once in
    the matrix's own folder and shared by every job -- compiling the suite and its
    libraries again in each of ~180 runs would cost about a second each."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _launch(
    spec: RunSpec, folder: Path, env: Mapping[str, str], timeout: float, live: set[subprocess.Popen[bytes]], lock: threading.Lock
) -> RunResult:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "conformance.killmatrix", "--job", spec.subject, "--job-dir", str(folder)]
    if spec.strict:
        command.append("--job-strict")
    with open(folder / "log.txt", "wb") as log:
        # A session of its own: a run that exceeds its bound is killed with its group.
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with lock:
            live.add(proc)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return RunResult(problem=f"timed out after {timeout:g} s (log: {folder / 'log.txt'})")
        finally:
            with lock:
                live.discard(proc)
    run_file = folder / RUN_FILE
    if proc.returncode != 0 or not run_file.is_file():
        tail = (folder / "log.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return RunResult(problem=f"the run crashed (exit {proc.returncode}): {' / '.join(tail) or 'no output'}")
    return RunResult.from_document(json.loads(run_file.read_text(encoding="utf-8")))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group this runner started for the run
    proc.wait()


def run_matrix(specs: Sequence[RunSpec], *, jobs: int, workdir: Path, timeout: float = RUN_TIMEOUT) -> dict[str, RunResult]:
    """Run every spec (``jobs`` at a time); results by :attr:`RunSpec.key`."""
    progress = _Progress(len(specs))
    env = _job_environment(workdir / "pycache")
    live: set[subprocess.Popen[bytes]] = set()
    lock = threading.Lock()

    def one(index: int, spec: RunSpec) -> tuple[str, RunResult]:
        started = time.monotonic()
        folder = workdir / f"{index:03d}-{spec.subject}{'-strict' if spec.strict else ''}"
        result = _launch(spec, folder, env, timeout, live, lock)
        progress.step(spec.key, time.monotonic() - started, result)
        return spec.key, result

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(one, i, s) for i, s in enumerate(specs)]
        return dict(f.result() for f in futures)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            running = list(live)
        for proc in running:
            _kill(proc)
        raise
    finally:
        pool.shutdown(wait=True)


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m conformance.killmatrix",
        description="Run the suite once per fault and per variant; judge recall and precision (issue 7).",
    )
    p.add_argument("--jobs", type=int, default=JOBS, help=f"runs at a time (default {JOBS})")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these faults / variants ('clean', 'independent' too)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {DOC_JSON.relative_to(ROOT)} and {DOC_MD.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="fail when the committed matrix differs from a fresh run")
    p.add_argument("--run-timeout", type=float, default=RUN_TIMEOUT, help=f"seconds one run may take (default {RUN_TIMEOUT:g})")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep every run's log and reports in DIR")
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--job-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--job-strict", action="store_true", help=argparse.SUPPRESS)
    return p


def _compare(path: Path, fresh: str) -> list[str]:
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old == fresh:
        return []
    rel = str(path.relative_to(ROOT))
    return list(difflib.unified_diff(old.splitlines(), fresh.splitlines(), f"{rel} (committed)", f"{rel} (fresh run)", lineterm=""))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.job:
        return run_job(RunSpec(args.job, args.job_strict), args.job_dir)
    if args.jobs < 1:
        _parser().error("--jobs must be at least 1")
    everything = subjects()
    if args.only:
        unknown = sorted(set(args.only) - set(everything))
        if unknown:
            _parser().error(f"unknown name(s) {', '.join(unknown)}; see conformance/reference/faults_*.py and variants.py")
        if args.write or args.check:
            _parser().error("--write and --check publish the whole matrix: drop --only")
        chosen = [s for s in everything.values() if s.name in set(args.only)]
    else:
        chosen = list(everything.values())
    specs = plan(chosen)
    # A terminated runner ends its runs too (they are sessions of their own).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = args.keep.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="killmatrix-")))
        results = run_matrix(specs, jobs=args.jobs, workdir=workdir, timeout=args.run_timeout)
    elapsed = time.monotonic() - started
    levels = profile_levels()
    matrix = evaluate(
        chosen,
        results,
        levels,
        all_faults_declare=[s.requirement for s in everything.values() if s.is_fault and s.requirement],
        complete=not args.only,
    )
    from conformance.derived_variants import derive_factors

    doc = matrix_document(matrix, derive_factors()[0])
    out = sys.stdout
    out.write(
        f"kill matrix: {len(specs)} runs in {elapsed:.0f} s with {args.jobs} jobs; recall {matrix.killed}/{len(matrix.faults)}"
        f" ({doc['summary']['recall']}), precision {matrix.passing}/{len(matrix.precision)} ({doc['summary']['precision']})\n"
    )
    for problem in matrix.problems:
        out.write(f"  {problem}\n")
    status = 1 if matrix.problems else 0
    texts = {DOC_JSON: document_text(doc), DOC_MD: render_markdown(doc)}
    if args.write:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        out.write(f"wrote {', '.join(str(p.relative_to(ROOT)) for p in texts)}\n")
    elif args.check:
        diffs = [line for path, text in texts.items() for line in _compare(path, text)]
        if diffs:
            out.write("the committed kill matrix differs from a fresh run (regenerate with --write):\n")
            out.write("\n".join(diffs[:200]) + "\n")
            status = 1
        else:
            out.write("the committed kill matrix is up to date\n")
    out.write("the matrix holds\n" if not matrix.problems else f"the matrix does not hold ({len(matrix.problems)} problems)\n")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
