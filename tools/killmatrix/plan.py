"""The matrix's settings, its subjects (the clean server, the independent one, the named
and generated variants, the faults) and the runs it plans for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.reporting.certification import REPORT_FILES
from conformance.reporting.verdict import Status

__all__ = [
    "BASE_KNOBS",
    "CLEAN",
    "COLLATERAL_LIMIT",
    "DOC_JSON",
    "DOC_MD",
    "FAIL",
    "FORMAT_VERSION",
    "GENERATED",
    "GENERATED_PREFIX",
    "INDEPENDENT",
    "INDEPENDENT_DECLARES",
    "JOBS",
    "JOB_PYTEST_ARGS",
    "JUNIT_FILE",
    "MATRIX_LIMITS",
    "NOT_CONFORMANT",
    "NOT_RUN",
    "PACKAGE_DIR",
    "PASS",
    "PROFILE",
    "RESULTS_FILE",
    "ROOT",
    "RUN_FILE",
    "RUN_TIMEOUT",
    "RunSpec",
    "SKIP",
    "STRICT_ARGS",
    "SUITE_ARGS",
    "Subject",
    "WARN",
    "plan",
    "subjects",
]

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent.parent
DOC_JSON = ROOT / "docs" / "kill-matrix.json"
DOC_MD = ROOT / "docs" / "kill-matrix.md"
FORMAT_VERSION = 1
PROFILE = "doc"

#: Collateral failures a fault may cause without a written reason.
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
#: Chat and info limits half the documented ones, management the documented 30: a burst
#: of 2N + 1 requests must leave within three quarters of a window, and the documented
#: chat and info bursts (121 streams and 201 reads at once) take longer than that on a
#: loaded 2-core machine; the management group, the pacer's tightest, keeps its 30 so
#: that pacing holds no run back for long.
MATRIX_LIMITS: Mapping[str, int] = {"chat": 30, "management": 30, "info": 50}
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
#: Runs at a time. Most of a run is waiting (the pacer, the rate window, Retry-After,
#: streams), not computing: with five at a time two cores were 70 % idle; eight keep them
#: busy without slowing a burst past its window.
JOBS = 8
#: One run's wall-clock bound; a run that exceeds it is killed and reported.
RUN_TIMEOUT = 300.0

CLEAN = "clean"
#: The names of generated variants begin with this (tools/killmatrix/derived.py).
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
    generated variants (tools/killmatrix/derived.py), the faults."""
    if generated is None:
        from tools.killmatrix.derived import generate

        generated = generate()
    if faults is None:
        from conformance.reference.faults import dialect_faults

        faults = dialect_faults("doc")  # the matrix runs the doc profile; the coze faults are not its
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
    """The runs: a MUST fault by default, a SHOULD fault under --strict (SHOULD
    faults are killed under --strict); every other subject in both modes."""
    specs: list[RunSpec] = []
    for s in chosen:
        if s.is_fault:
            specs.append(RunSpec(s.name, strict=s.level != "MUST"))
        else:
            specs.extend((RunSpec(s.name, strict=False), RunSpec(s.name, strict=True)))
    return specs
