"""The matrix's settings, its subjects (the clean server, the independent one, the named
and generated variants, the faults) and the runs it plans for them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from conformance.reporting.certification import REPORT_FILES
from conformance.reporting.verdict import Status

__all__ = [
    "BASE_KNOBS",
    "CLEAN",
    "CLEAN_COZE",
    "CLEAN_STUDIO",
    "DialectMatrix",
    "COLLATERAL_LIMIT",
    "CozeVariant",
    "COZE_KNOBS",
    "COZE_SUITE_ARGS",
    "COZE_DIALECT_VARIANTS",
    "COZE_VARIANTS",
    "COZE_VARIANT_SUFFIX",
    "EMBEDDED_SPACE_ID",
    "DOC_JSON",
    "DOC_MD",
    "FAIL",
    "FORMAT_VERSION",
    "GENERATED",
    "GENERATED_PREFIX",
    "INDEPENDENT",
    "INDEPENDENT_COZE",
    "INDEPENDENT_COZE_DECLARES",
    "INDEPENDENT_DECLARES",
    "INDEPENDENT_STUDIO",
    "INDEPENDENT_STUDIO_DECLARES",
    "JOBS",
    "JOB_PYTEST_ARGS",
    "JUNIT_FILE",
    "MATRIX_LIMITS",
    "NOT_CONFORMANT",
    "NOT_RUN",
    "PACKAGE_DIR",
    "PASS",
    "PROFILE",
    "PROFILES",
    "ProfileRuns",
    "RUNS",
    "RESULTS_FILE",
    "ROOT",
    "RUN_FILE",
    "RUN_TIMEOUT",
    "SAMPLE_SHARE",
    "RunSpec",
    "SKIP",
    "STRICT_ARGS",
    "STUDIO_DIALECT_VARIANTS",
    "STUDIO_KNOBS",
    "STUDIO_SUITE_ARGS",
    "STUDIO_VARIANTS",
    "STUDIO_VARIANT_SUFFIX",
    "SUITE_ARGS",
    "Subject",
    "WARN",
    "dialect_matrices",
    "interleave",
    "plan",
    "shard_count",
    "subjects",
]

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent.parent
DOC_JSON = ROOT / "docs" / "kill-matrix.json"
DOC_MD = ROOT / "docs" / "kill-matrix.md"
#: 2: one section per profile (``profiles``), each row naming its profile.
#: 3: each section carries the ``fingerprint`` of its inputs (tools/killmatrix/fingerprint.py).
FORMAT_VERSION = 3
#: The default profile (the suite's ``--profile`` default).
PROFILE = "doc"
#: The profiles the matrix covers, in the order they are published.
PROFILES: tuple[str, ...] = ("doc", "coze", "studio")

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
#: The workspace id of a coze run's bots (the coze profile's bot create needs one: a run
#: against the job's own server, an external ``--target-url`` to the suite, must give it;
#: the reference and the independent server take any). The suite's own embedded id.
EMBEDDED_SPACE_ID = "7000000000000000001"
#: Suite options of every coze run: the doc runs' few fuzz examples, short deadlines,
#: ``--insecure`` and fixed seed, and nothing of their rate-limit machinery. The coze
#: profile has no rate-limit requirement (no rate-limit phase, no ``--ratelimit-exact``
#: check), and neither server limits the coze dialect; its ``[ratelimits]`` are the
#: suite's own pacing ceilings (20 chat, 10 management, 20 info requests a second).
#: ``--rate-window 4 --rate-limit chat=30`` would not be harmless there: they would
#: replace those ceilings and pace a coze run to 30 requests per 4 s -- slower, for
#: nothing. The reference server is given no rate knob either (COZE_KNOBS).
COZE_SUITE_ARGS: tuple[str, ...] = (
    "--profile", "coze", "--space-id", EMBEDDED_SPACE_ID,
    "--fuzz-examples", "5", "--stream-timeout", "5", "--request-timeout", "5", "--insecure", "--hypothesis-seed", "0",
)


#: Suite options of every studio run: as a coze run's (the studio dialect has no limiter
#: either; its [ratelimits] are the suite's own ceilings). The workspace is found
#: through the space list, the logins are the servers' own principals' (jobs.py).
STUDIO_SUITE_ARGS: tuple[str, ...] = (
    "--profile", "studio",
    "--fuzz-examples", "5", "--stream-timeout", "5", "--request-timeout", "5", "--insecure", "--hypothesis-seed", "0",
)


@dataclass(frozen=True)
class ProfileRuns:
    """How the runs of one profile are made: the reference server's dialect and base
    knobs, the suite's options by default and the ones ``--strict`` adds."""

    profile: str
    dialect: Literal["doc", "coze", "studio"]  # ServerConfig.dialect
    knobs: Mapping[str, Any]
    suite_args: tuple[str, ...]
    strict_args: tuple[str, ...]


#: Every profile's runs. The coze dialect reads only token_delay of BASE_KNOBS (10 ms a
#: token, for the same reason: a cancel must land mid-answer).
RUNS: Mapping[str, ProfileRuns] = {
    "doc": ProfileRuns("doc", "doc", BASE_KNOBS, SUITE_ARGS, STRICT_ARGS),
    "coze": ProfileRuns("coze", "coze", {"token_delay": BASE_KNOBS["token_delay"]}, COZE_SUITE_ARGS, ("--strict",)),
    "studio": ProfileRuns("studio", "studio", {"token_delay": BASE_KNOBS["token_delay"]}, STUDIO_SUITE_ARGS, ("--strict",)),
}

#: Runs at a time. Most of a run is waiting (the pacer, the rate window, Retry-After,
#: streams), not computing: with five at a time two cores were 70 % idle; eight keep them
#: busy without slowing a burst past its window.
JOBS = 8
#: The share of the runs besides the default precision runs that ``--check`` re-runs
#: (tools/killmatrix/sample.py): one in ten, so that ten successive commits re-run every
#: one; with every precision subject's default run, about a third of the matrix's runs.
SAMPLE_SHARE = 0.1


def shard_count(share: float) -> int:
    """How many shards a sample share deals the rotating runs into: ceil(1 / share)."""
    if not 0 < share <= 1:
        raise ValueError(f"the sample share must be in (0, 1], not {share:g}")
    return math.ceil(1 / share - 1e-9)


#: One run's wall-clock bound; a run that exceeds it is killed and reported.
RUN_TIMEOUT = 300.0

CLEAN = "clean"
CLEAN_COZE = "clean_coze"
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

INDEPENDENT_COZE = "independent_coze"
#: The independent server's coze dialect (tests/independent/coze_dialect.py, its module
#: docstring's table) takes the less usual legal reading wherever the contract leaves
#: one; these are the SHOULD requirements that breaks: no conversation.chat.in_progress,
#: only chat.created (COZE-SSE-006).
INDEPENDENT_COZE_DECLARES = frozenset({"COZE-SSE-006"})

#: The ServerConfig knobs, besides principals, token_delay and faults, that the coze
#: dialect honours (conformance/reference/coze/): the stream writer's write chunking
#: (chunk_sizes, chunk_seed; eventstream.StreamWriter), the model's answer text
#: (answer_style; coze/chats.py) and the key order of event payloads (json_key_order;
#: the stream writer's reshape, wireforms.py -- payloads only, a JSON answer's keys are
#: the envelope's own). Not the framing knobs (line_ending, space_after_colon, bom,
#: sse_extras, multiline_data, content_type: the coze stream has the cloud's framing,
#: coze/stream.COZE_FORMAT, whose legal other forms are coze_* knobs), not json_transfer
#: nor the doc error forms (coze/envelope.py writes its answers itself; coze_auth_status
#: and coze_error_status are its statuses), not the rate limits (no limiter). max_body_bytes is read too,
#: but no coze requirement sends a body near it: a variant of it would be the clean
#: server again.
#: And the coze wire variants of ServerConfig ("Coze wire variants": the coze_* knobs),
#: which only the coze dialect reads.
COZE_KNOBS = frozenset(
    {
        "chunk_sizes", "chunk_seed", "answer_style", "json_key_order",
        "coze_auth_status", "coze_error_status", "coze_sse_space", "coze_line_ending", "coze_extra_fields",
        "coze_unset_times", "coze_follow_up", "coze_content_type_params",
    }
)
#: A coze run of a named variant (conformance/reference/variants.py) is named after it.
COZE_VARIANT_SUFFIX = "_coze"
#: The named variants whose knobs the coze dialect honours (all of them in COZE_KNOBS),
#: run against the coze dialect too, as legal forms the coze checks must accept; each
#: with why that form is legal for cozepy. Not json_extra_keys, although the stream
#: writer would apply it: its unknown keys go into every object, ``meta_data`` too,
#: whose values are strings (cozepy: ``Dict[str, str]``; schemas/coze/chat.json) -- an
#: object there is not a legal coze form.
COZE_VARIANTS: Mapping[str, str] = {
    "sse_split_writes": "cozepy reads the body line by line (httpx iter_lines), whatever the writes.",
    "answer_text_other": "the answer's text is the model's: nothing in the contract fixes it.",
    "json_keys_reversed": "a JSON object's keys are unordered (cozepy: pydantic models); the event payloads'"
    " keys in reverse order (the coze dialect reshapes its event payloads only).",
}



@dataclass(frozen=True)
class CozeVariant:
    """A legal form of the coze dialect alone (the coze_* knobs of ServerConfig): its
    knobs, what it sends, why cozepy 0.20 and @coze/api 1.3.9 both read it with every MUST
    of the coze catalogue still holding, and the contract section it reads otherwise."""

    knobs: Mapping[str, Any]
    description: str
    why: str
    reading: str


#: The coze dialect's own legal variants, run as ``<name>_coze`` (preferred: no SHOULD fails
#: under --strict either). The cloud's own form is each knob's default; the independent
#: server's coze dialect takes most of these forms together, these take them one at a time.
COZE_DIALECT_VARIANTS: Mapping[str, CozeVariant] = {
    "auth_refused_200": CozeVariant(
        {"coze_auth_status": 200},
        "A refused credential (missing or wrong key) answered HTTP 200 with code 4100 in the envelope, not HTTP 401.",
        "the contract's \"legal other reading\" of Auth; cozepy and @coze/api judge the body's code, not the status.",
        "coze contract: Auth",
    ),
    "errors_http_4xx": CozeVariant(
        {"coze_error_status": "http"},
        "Business errors with a 4xx status by code (400 for 4000, 403 for 4101/4015, 404 for 4200, 409 for"
        " 4016/4104), the same envelope body, not HTTP 200.",
        "the contract's \"legal other reading\" of the error envelope; cozepy raises CozeAPIError from the body's"
        " code whatever the status.",
        "coze contract: Envelope",
    ),
    "sse_space_after_colon": CozeVariant(
        {"coze_sse_space": True},
        "`event: <name>` and `data: <json>`: one space after each field's colon.",
        "an SSE field value drops one leading space (WHATWG; cozepy strips the value).",
        "coze contract: stream true",
    ),
    "sse_crlf": CozeVariant(
        {"coze_line_ending": "\r\n"},
        "The event stream's lines end with CRLF, not LF.",
        "httpx iter_lines (cozepy) and every SSE parser split lines on CRLF as on LF.",
        "coze contract: stream true",
    ),
    "extra_fields": CozeVariant(
        {"coze_extra_fields": True},
        "Undocumented keys on every chat (section_id, meta_data of strings, required_action), message (section_id,"
        " meta_data, reasoning_content) and bot object (folder_id, owner_user_id, knowledge) and every envelope"
        " (debug_url, detail.extra).",
        "the cloud sends some of them (vectors/coze-cloud); cozepy's pydantic models and @coze/api ignore unknown"
        " keys, and meta_data holds strings as cozepy's Dict[str, str] reads it.",
        "coze contract: Objects",
    ),
    "unset_times_zero": CozeVariant(
        {"coze_unset_times": True},
        "A chat's completed_at and failed_at written as 0 while unset, not left out.",
        "the contract marks both optional; cozepy reads Optional[int], and 0 is no time.",
        "coze contract: Objects",
    ),
    "follow_up_messages": CozeVariant(
        {"coze_follow_up": True},
        "After the answer's message.completed, a verbose and two follow_up message.completed (no deltas), listed by"
        " message/list too.",
        "the contract's \"optionally more message.completed (type verbose / follow_up)\", as the cloud sends them.",
        "coze contract: stream true",
    ),
    "content_type_params": CozeVariant(
        {"coze_content_type_params": True},
        "The stream's `Content-Type: text/event-stream; charset=utf-8`.",
        "a media type parameter; cozepy tests for \"event-stream\" in the header, @coze/api for text/event-stream.",
        "coze contract: stream true",
    ),
}

#: The studio dialect's counterparts (conformance/reference/studio/; docs/studio-contract.md).
CLEAN_STUDIO = "clean_studio"
INDEPENDENT_STUDIO = "independent_studio"
#: The independent server's studio dialect takes the other legal reading throughout (its
#: module docstring) and breaks no SHOULD of the studio catalogue.
INDEPENDENT_STUDIO_DECLARES: frozenset[str] = frozenset()
STUDIO_VARIANT_SUFFIX = "_studio"
#: The ServerConfig knobs the studio dialect honours besides principals, token_delay and
#: faults: the shared stream writer's chunking and payload key order, the model's answer
#: text, and the studio_* wire variants (not the capabilities: a capability switched off
#: SKIPs a MUST -- an INCOMPLETE verdict, tests/test_studio_profile.py -- and not
#: studio_no_model, a precondition that ends the run).
STUDIO_KNOBS = frozenset(
    {
        "chunk_sizes", "chunk_seed", "answer_style", "json_key_order",
        "studio_auth_status", "studio_error_status", "studio_cancel_envelope", "studio_cancel_ends_stream",
        "studio_sse_space", "studio_line_ending", "studio_prerun_envelope",
    }
)
#: The named variants run against the studio dialect too, each with why it is legal there.
STUDIO_VARIANTS: Mapping[str, str] = {
    "sse_split_writes": "an SSE reader reads lines across any writes (WHATWG); Studio's own client buffers them.",
    "answer_text_other": "the answer's text is the model's: nothing in the contract fixes it.",
    "json_keys_reversed": "a JSON object's keys are unordered; the event payloads' keys in reverse order.",
}
#: The studio dialect's own legal variants (the contract's "legal other reading"s), run
#: as ``<name>_studio``.
STUDIO_DIALECT_VARIANTS: Mapping[str, CozeVariant] = {
    "auth_refused_401": CozeVariant(
        {"studio_auth_status": 401},
        "A refused Bearer key or dead session cookie answered HTTP 401 with code 700012006, not HTTP 200.",
        "the contract's legal other reading of an OpenAPI refusal (coze-wire §5 #18: status 401 or the code).",
        "studio contract: Principals and auth",
    ),
    "errors_http_4xx": CozeVariant(
        {"studio_error_status": "http"},
        "Business errors (9-digit codes) with a 4xx status, the same body, not HTTP 200.",
        "the contract's legal other reading of a business error (coze-wire §5 #17: is_error = status >= 400 or code != 0).",
        "studio contract: Envelope",
    ),
    "cancel_envelope": CozeVariant(
        {"studio_cancel_envelope": True},
        'A cancel answering {"code":0,"msg":"","data":<chat status canceled>}, not {"ChatV3ChatDetail":...}.',
        "the cloud's form; the contract lists it as legal (coze-wire §5 #10: read the chat from data, ChatV3ChatDetail or the root).",
        "studio contract: /v3/chat/cancel",
    ),
    "cancel_ends_stream": CozeVariant(
        {"studio_cancel_ends_stream": True},
        "A cancelled chat's stream ends after the event being written: no chat.completed, no stream.done.",
        "the contract's \"a stream that instead ends early after its cancel is also legal\".",
        "studio contract: /v3/chat/cancel",
    ),
    "sse_space_after_colon": CozeVariant(
        {"studio_sse_space": True},
        "`event: <name>` and `data: <json>`: one space after each field's colon.",
        "an SSE field value drops one leading space (WHATWG; coze-wire §5 #5).",
        "studio contract: /v3/chat",
    ),
    "sse_crlf": CozeVariant(
        {"studio_line_ending": "\r\n"},
        "The event streams' lines end with CRLF, not LF.",
        "every SSE parser splits lines on CRLF as on LF (WHATWG).",
        "studio contract: /v3/chat",
    ),
    "prerun_error_envelope": CozeVariant(
        {"studio_prerun_envelope": True},
        "A /v3/chat pre-run error (unknown or unpublished bot, another's conversation) as a JSON error envelope, not one error event.",
        "the contract's legal other reading of a pre-run error (coze-wire §5 #23).",
        "studio contract: /v3/chat",
    ),
}


@dataclass(frozen=True)
class DialectMatrix:
    """The precision subjects of a profile whose reference dialect is not the doc's: its
    clean server, the independent server's dialect, the doc's named variants it honours
    (``<name><suffix>``) and its own legal variants (``<name><suffix>``)."""

    profile: str
    clean: str
    independent: str
    independent_declares: frozenset[str]
    independent_description: str
    knobs: frozenset[str]
    suffix: str
    named: Mapping[str, str]
    own: Mapping[str, CozeVariant]

    def subjects(self, variants: Mapping[str, Any]) -> dict[str, Subject]:
        found = {
            self.clean: Subject(
                self.clean, "clean", description=f"The reference server's {self.profile} dialect as configured by default.",
                profile=self.profile,
            ),
            self.independent: Subject(
                self.independent, "alternate", server="independent", declares=self.independent_declares,
                description=self.independent_description,
                reading=f"Every contract point of tests/independent/{self.profile}_dialect.py's docstring",
                profile=self.profile,
            ),
        }
        for name, why in self.named.items():
            v = variants.get(name)
            if v is None:
                continue
            if not set(v.knobs) <= self.knobs or v.declares:
                raise ValueError(
                    f"variant {name!r} sets knobs the {self.profile} dialect does not honour, or declares doc SHOULD ids"
                )
            found[name + self.suffix] = Subject(
                name + self.suffix, v.kind, knobs=dict(v.knobs),
                description=f"The {self.profile} dialect with `{name}`'s knobs: {v.description} Legal for the {self.profile} profile: {why}",
                reading=v.reading, profile=self.profile,
            )
        for name, cv in self.own.items():
            if not set(cv.knobs) <= self.knobs:
                raise ValueError(f"{self.profile} variant {name!r} sets knobs the {self.profile} dialect does not honour")
            if name + self.suffix in found:
                raise ValueError(f"{self.profile} variant name {name!r} is taken")
            found[name + self.suffix] = Subject(
                name + self.suffix, "preferred", knobs=dict(cv.knobs),
                description=f"The {self.profile} dialect with {cv.description} Legal for the {self.profile} profile: {cv.why}",
                reading=cv.reading, profile=self.profile,
            )
        return found


def dialect_matrices() -> tuple[DialectMatrix, ...]:
    """The coze and studio profiles' precision subjects (read when called, so that a
    test may patch one table)."""
    return (
        DialectMatrix(
            "coze", CLEAN_COZE, INDEPENDENT_COZE, INDEPENDENT_COZE_DECLARES,
            "tests/independent/coze_dialect.py: the independent stdlib server's coze dialect, written from"
            " the wire contract, the cloud captures and the SDKs' parsers; takes the less usual legal reading wherever"
            " the contract leaves one (its module docstring's table). It sends conversation.chat.created but no"
            " conversation.chat.in_progress (COZE-SSE-006, a SHOULD: the only one it breaks). Beside that: HTTP 200"
            " code 4100 for a bad key, business errors with HTTP 200, 4200 for another principal's ids, keys in"
            " another order, update without data, millisecond publish versions, string request ids only, a body"
            " conversation_id ignored, 4016 for a busy conversation, \\uXXXX escapes, HTTP/1.0, extra fields,"
            " completed_at/failed_at 0 while unset, usage on every chat, CRLF framing with a space after the colon"
            " and `; charset=utf-8`, events in several writes (one inside a UTF-8 character, one between CR and LF),"
            " irregular deltas, verbose and follow_up messages, an error event and no done after a cancel, retrieve"
            " and message/list by GET and POST, the log id header on every answer.",
            COZE_KNOBS, COZE_VARIANT_SUFFIX, COZE_VARIANTS, COZE_DIALECT_VARIANTS,
        ),
        DialectMatrix(
            "studio", CLEAN_STUDIO, INDEPENDENT_STUDIO, INDEPENDENT_STUDIO_DECLARES,
            "tests/independent/studio_dialect.py: the independent stdlib server's studio dialect, written from"
            " docs/studio-contract.md alone; takes the other legal reading throughout (its module docstring): OpenAPI"
            " refusals with HTTP 401, business errors with HTTP 400, pre-run chat errors as a JSON envelope, cancel"
            " in the envelope with status cancelled and the stream ended early after it, `event: x`/`data: y` with a"
            " space and CRLF, events cut at arbitrary bytes (inside a UTF-8 character, between CR and LF), payload"
            " keys in another order with extra fields, get_online_info in the envelope, 400 without connector_id,"
            " 19-digit time-based versions, a lower-case x-log-id header.",
            STUDIO_KNOBS, STUDIO_VARIANT_SUFFIX, STUDIO_VARIANTS, STUDIO_DIALECT_VARIANTS,
        ),
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
    profile: str = PROFILE  # the suite's --profile; the reference server speaks its dialect

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
    """Every subject by name, the doc profile's first: clean, the independent server,
    the named variants, the generated variants (tools/killmatrix/derived.py), the doc
    faults; then the coze profile's: clean_coze, independent_coze, the named variants
    of COZE_VARIANTS and the coze variants of COZE_DIALECT_VARIANTS (``<name>_coze``),
    the coze faults. A fault's profile is its
    dialect (``Fault.dialect``); ``faults`` defaults to every registered fault."""
    if generated is None:
        from tools.killmatrix.derived import generate

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
    for matrix in dialect_matrices():
        for subject in matrix.subjects(variants).values():
            if subject.name in found:
                raise ValueError(f"subject name {subject.name!r} is taken")
            found[subject.name] = subject
    ordered = sorted(faults.values(), key=lambda f: PROFILES.index(getattr(f, "dialect", PROFILE)))
    for f in ordered:
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
            profile=getattr(f, "dialect", PROFILE),
        )
    # The doc profile's subjects first, then the coze profile's, then the studio
    # profile's (the order runs and rows are planned and published in).
    return {s.name: s for p in PROFILES for s in found.values() if s.profile == p}


def plan(chosen: Iterable[Subject]) -> list[RunSpec]:
    """The runs: a MUST fault by default, a SHOULD fault under --strict (SHOULD
    faults are killed under --strict); every other subject in both modes. The
    profiles' runs spread evenly over the order they start in (:func:`interleave`)."""
    by_profile: dict[str, list[RunSpec]] = {}
    for s in chosen:
        specs = by_profile.setdefault(s.profile, [])
        if s.is_fault:
            specs.append(RunSpec(s.name, strict=s.level != "MUST"))
        else:
            specs.extend((RunSpec(s.name, strict=False), RunSpec(s.name, strict=True)))
    return interleave(list(by_profile.values()))


def interleave(lists: Sequence[Sequence[RunSpec]]) -> list[RunSpec]:
    """The runs of several lists in one order, each list's runs in their order and
    spread evenly over it (run i of n at i + 1/2 of n). The doc profile's runs mostly
    wait (rate windows, pacing); the coze profile's mostly compute (no limiter, no
    rate-limit phase): spread, the coze runs fill cores the doc runs leave idle, and a long coze
    run (a fault whose chat never completes is polled for 30 s, three times) starts
    mid-matrix, not at its end. Deterministic; the results do not depend on it."""
    keyed = [
        (Fraction(2 * i + 1, 2 * len(runs)), n, i, spec) for n, runs in enumerate(lists) for i, spec in enumerate(runs)
    ]
    return [spec for *_, spec in sorted(keyed, key=lambda k: (k[0], k[1], k[2]))]
