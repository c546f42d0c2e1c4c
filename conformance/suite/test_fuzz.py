"""Fuzzing every documented request body, query and path parameter.

One test per (endpoint, kind) of the plan in ``conformance.oracle.strategies``: Hypothesis
draws the cases (valid bodies from the request schemas through hypothesis-jsonschema,
then one named breakage per kind) and each example is one request, judged at once.

* A broken MUST (a valid body refused, a bad one accepted, a 5xx) is shrunk by
  Hypothesis to its smallest case (within ``SHRINK_REQUESTS`` more requests) and
  reported once, with that case's curl command (credentials as ``$COZE_API_KEY`` /
  ``$COZE_SESSION_KEY``).
* A request that gets no answer in time ends the test at once (no shrinking: every
  try could wait a whole deadline); the plugin FAILs the test's requirements with the
  transport error -- "never a hang" is a bounded failure.
* The seed is printed and stored as the JUnit property ``fuzz_seed``: random per run,
  derived from the row id in CI (``CI=true``), or pytest's ``--hypothesis-seed``.
* Volume: ``--fuzz-examples`` requests per endpoint, dealt over its kinds in priority
  order; by default (``conformance.run.pacing.fuzz_volume``) ``strategies.EMBEDDED_EXAMPLES``
  against the embedded server, and against a remote target ``strategies.budget_examples``:
  what the rate budget leaves in the windows the rest of the run needs anyway (at most
  ``REMOTE_EXAMPLES``), so fuzzing never makes the run wait for another window. The
  run's header says which.
* Edge cases: the boundaries no run may leave to chance (``strategies.edge_cases``: every
  optional parameter of the wrong JSON type, ``stream`` as "yes", "false", 1 and null,
  whole bodies of 64 KiB - 1 to 1 MiB + 1 bytes, deep nesting, the Unicode classes of
  REQ-003) are Hypothesis explicit examples: sent first, in every run, on top of the
  drawn examples and whatever ``--fuzz-examples`` says (0 switches fuzzing off). They go
  out as the second principal when one is configured (``edge_bot``).

Ids are real: the run's published bot for reading and chatting, and for the endpoints
that change a bot (update, publish) one bot of the fuzz module's own, made once per run;
the edge cases use a published bot of the second principal's (``edge_bot``) when one is
configured.
"""

from __future__ import annotations

import os
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis.errors import Flaky

from conformance.oracle.catalogue import load_catalogue
from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile, load_profile
from conformance.oracle.strategies import (
    FuzzCase,
    Row,
    World,
    cases,
    edge_cases,
    edge_counts,
    fuzzes,
    plan,
)
from conformance.plugin import build_client
from conformance.run.pacing import fuzz_volume
from conformance.run.shared_state import SharedState
from conformance.settings import Settings
from conformance.suite.conftest import BotMaker
from conformance.suite.helpers import Bot, envelope, leading_error_code
from conformance.transport.client import (
    ApiClient,
    ApiResponse,
    ExchangeLog,
    TransportError,
)

#: spec 错误码 "| 400 | 请求参数错误 |": the profile lists the code but names no role for
#: it, so the one code a malformed request may get is named here.
BAD_REQUEST = 400
#: These change the bot they name: never the run's shared bot, which other tests read.
OWN_BOT_ENDPOINTS = frozenset({"update", "publish"})
#: Requests Hypothesis may spend shrinking a failure: every one is a real request to
#: the target (paced, maybe billed); past it the smallest failing case seen is reported.
SHRINK_REQUESTS = 25


# --------------------------------------------------------------------------- the plan


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "row" not in metafunc.fixturenames:
        return
    from conformance.keys import SETTINGS_KEY

    settings = metafunc.config.stash[SETTINGS_KEY]
    profile = load_profile(settings.profile)
    catalogue = load_catalogue().for_profile(profile.name)
    rows: list[Row] = []
    # The fuzz plan covers the endpoints of the page's request tables; a profile without
    # them (or without their requirements) fuzzes nothing here: an empty parameter set,
    # which the plugin deselects.
    if fuzzes(profile):
        # Planned without edge cases first: the edge cases are built from the page's
        # request tables, which only a profile with the plan's requirements has.
        examples, _why = fuzz_volume(settings)
        judged, _ = plan(examples, lambda rid: rid in catalogue)
        if judged:
            rows, _deferred = plan(examples, lambda rid: rid in catalogue, edge_counts(profile))
    metafunc.parametrize(
        "row", [pytest.param(row, id=row.id, marks=pytest.mark.requirement(*row.requirements)) for row in rows]
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def fuzz_bot(
    conformance_settings: Settings, setup_client: ApiClient, shared_state: SharedState, run_id: str, profile: Profile
) -> Bot:
    """A draft bot the update and publish fuzzing may change (one per run, all workers)."""

    def make() -> dict[str, Any]:
        maker = BotMaker(setup_client, shared_state, run_id, "principal-1", conformance_settings, profile)
        return maker.create("f").__dict__

    return Bot(**shared_state.get_or_create("fuzz_bot", make))


@pytest.fixture(scope="session")
def edge_bot(
    conformance_settings: Settings,
    shared_state: SharedState,
    run_id: str,
    request: pytest.FixtureRequest,
    profile: Profile,
) -> Bot:
    """A published bot of the second principal for the always-run edge cases (one per
    run, all workers). Why the second: the first principal's share of the rate budget is
    spent by the other modules (tests/test_budget.py counts 48 of its 50 chat and 24 of
    its 25 management requests before the rate-limit phase), the second's is nearly
    untouched -- and the edge cases add 26 chat and 13 management requests. The update
    edges change this bot (its name kept), never the first principal's shared one."""
    from conformance.run.pacing import pacer_for

    def make() -> dict[str, Any]:
        client = build_client(conformance_settings, second=True, log=ExchangeLog(), pacer=pacer_for(request.config))
        try:
            maker = BotMaker(client, shared_state, run_id, "principal-2", conformance_settings, profile)
            return maker.publish(maker.create("e")).__dict__
        finally:
            client.close()

    return Bot(**shared_state.get_or_create("edge_bot", make))


def _edge_side(request: pytest.FixtureRequest, settings_: Settings, row: Row, world: World, api: ApiClient) -> tuple[World, ApiClient]:
    """The world and client of the row's edge cases: the second principal's with its
    edge bot when one is configured, else the drawn cases' own (then paced, maybe slower)."""
    if not settings_.has_principal_2:
        return world, api
    bot: Bot = request.getfixturevalue("edge_bot")
    own = row.endpoint in OWN_BOT_ENDPOINTS
    return World(bot.id, world.user_id, bot_name=bot.name if own and bot.name else None), request.getfixturevalue("api2")


def fuzz_seed(request: pytest.FixtureRequest, row: Row) -> int:
    given_seed = request.config.getoption("hypothesis_seed", None)
    if given_seed is not None:
        return int(given_seed)
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return zlib.crc32(row.id.encode())  # derandomised in CI: the same cases every run
    return secrets.randbits(32)


# --------------------------------------------------------------------------- judging one answer


@dataclass(frozen=True)
class CaseJudgement:
    """What one fuzz case showed about one requirement: held or broken, and how to replay it."""

    requirement: str
    held: bool
    expected: str
    actual: str
    case: FuzzCase
    curl: str


class Violation(Exception):
    """A broken MUST in one example: Hypothesis shrinks the case that raised it."""

    def __init__(self, finding: CaseJudgement) -> None:
        super().__init__(f"{finding.requirement}: expected {finding.expected}, got {finding.actual}")
        self.finding = finding


class ShrinkBudgetSpent(BaseException):
    """Stop shrinking (a BaseException: Hypothesis lets it through at once)."""


class Unanswered(BaseException):
    """A request got no answer: a BaseException, so Hypothesis stops without shrinking."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


def _int_code(code: Any) -> int | None:
    return code if isinstance(code, int) and not isinstance(code, bool) else None


#: READING "`/api/conversation/chat` response": the run may answer an event stream
#: unasked; its refusals then come as a stream's leading error event (READING "Errors on
#: a streaming request"), which carries the code the envelope would.
MAY_STREAM_ENDPOINTS = frozenset({"run"})


def _rule(row: Row, requirement: str, profile: Profile, answer: ApiResponse, case: FuzzCase | None = None) -> tuple[bool, str]:
    """Whether ``answer`` keeps ``requirement`` for a case of ``row``, and what was expected.

    A case that retypes ``stream`` (``"yes"``, ``1``, ...) may be read as a stream request
    and refused in the stream's leading error event (READING "Errors on a streaming
    request"): that counts as the refusal. A stream without one -- "false" streamed to a
    client that asked for JSON -- is no refusal, and breaks REQ-004."""
    env = envelope(answer)
    code = _int_code(env.code)
    may_stream = row.endpoint in MAY_STREAM_ENDPOINTS or (case is not None and case.stream_retyped)
    if may_stream and answer.media_type == profile.stream["media_type"]:
        code = _int_code(leading_error_code(answer.body, answer.headers.get("content-type"), profile))
    status = answer.status
    survived = (200 <= status < 300 or 400 <= status < 500) and not (code is not None and code >= 500)
    if requirement == "REQ-003":
        return survived, "2xx or 4xx, never 5xx"
    if row.kind == "valid" and requirement == "RUN-001":
        is_stream = answer.media_type == profile.stream["media_type"]
        return survived and (is_stream or code is not None), "an envelope or an event stream, never a 5xx"
    if row.kind == "valid":
        return env.ok, f"code {profile.envelope.success_code} with a data object"
    if row.kind == "wrong-type" and profile.endpoint(row.endpoint).params_in != "body":
        codes = profile.unknown_ids.codes
        return code in codes, f"code {' or '.join(str(c) for c in sorted(codes))} in the error envelope"
    return code == BAD_REQUEST, f"code {BAD_REQUEST} in the error envelope"


def _size(finding: CaseJudgement) -> tuple[int, int, int]:
    case = finding.case
    return len(case.body or b""), len(case.path), len(case.params)


def _send(api: ApiClient, case: FuzzCase) -> ApiResponse:
    headers = {"Content-Type": "application/json"} if case.body is not None else None
    return api.request(case.method, case.path, params=case.params or None, content=case.body, headers=headers)


# --------------------------------------------------------------------------- the test


def test_fuzz(
    row: Row,
    request: pytest.FixtureRequest,
    api: ApiClient,
    check: Checks,
    profile: Profile,
    user_id: str,
    conformance_settings: Settings,
) -> None:
    own = row.endpoint in OWN_BOT_ENDPOINTS
    bot: Bot = request.getfixturevalue("fuzz_bot" if own else "published_bot")
    world = World(bot.id, user_id, bot_name=bot.name if own and bot.name else None)
    run_seed = fuzz_seed(request, row)
    request.node.user_properties.append(("fuzz_seed", str(run_seed)))
    print(f"fuzz seed of {row.id}: {run_seed} (replay with --hypothesis-seed={run_seed})")
    edges: tuple[FuzzCase, ...] = ()
    edge_api = api
    if row.edges:
        edge_world, edge_api = _edge_side(request, conformance_settings, row, world, api)
        edges = edge_cases(profile, row.endpoint, row.kind, edge_world)

    findings: list[CaseJudgement] = []
    violations: list[CaseJudgement] = []
    sent = 0
    levels = {rid: check.catalogue[rid].level for rid in row.requirements}

    def one(case: FuzzCase) -> None:
        nonlocal sent
        if violations and sent >= row.requests + SHRINK_REQUESTS:
            raise ShrinkBudgetSpent
        sent += 1
        try:
            answer = _send(edge_api if case.edge else api, case)
        except TransportError as exc:
            raise Unanswered(exc) from exc
        for requirement in row.requirements:
            if requirement in case.not_judged:
                continue  # strategies.NOT_JUDGED: e.g. a null may be read as absent
            held, expected = _rule(row, requirement, profile, answer, case)
            actual = envelope(answer).describe()
            finding = CaseJudgement(requirement, held, expected, actual, case, answer.exchange.to_curl())
            findings.append(finding)
            if not held and levels[requirement] == "MUST":
                violations.append(finding)
                raise Violation(finding)

    run = given(cases(profile, row.endpoint, row.kind, world, field=row.field, salt=run_seed))(one)
    # Explicit examples run first, before any drawn case, in every run (Phase.explicit);
    # Hypothesis runs the last applied first, hence reversed: the edges go out in order.
    for case in reversed(edges):
        run = example(case)(run)
    run = seed(run_seed)(run)
    run = settings(
        max_examples=max(row.examples, 1),
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        # No explain phase: it traces every line of every shrinking step (the client,
        # httpx, JSON) -- minutes against a real server, for a hint the curl gives better.
        # A row with no drawn example left (a small --fuzz-examples) runs its edges only.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink] if row.examples else [Phase.explicit],
    )(run)

    shrunk: CaseJudgement | None = None
    try:
        run()
    except Violation as violation:
        shrunk = violation.finding
    except (Flaky, ShrinkBudgetSpent):
        # The smallest case passed on its replay, or shrinking spent its requests:
        # report the smallest violation seen.
        shrunk = min(violations, key=_size, default=None)
    except Unanswered as unanswered:
        raise unanswered.error from None

    for requirement in row.requirements:
        mine = [f for f in findings if f.requirement == requirement]
        broken = shrunk if shrunk is not None and shrunk.requirement == requirement else None
        broken = broken or next((f for f in mine if not f.held), None)
        if broken is None:
            check(requirement, True, expected=mine[0].expected if mine else None, actual=f"{len(mine)} generated cases held")
            continue
        failed = sum(1 for f in mine if not f.held)
        check(
            requirement,
            False,
            expected=broken.expected,
            actual=broken.actual,
            detail=f"{failed} of {len(mine)} cases broke it (seed {run_seed}); smallest: {broken.case!r}\n"
            f"Reproduce with:\n{broken.curl}",
            soft=True,
        )
