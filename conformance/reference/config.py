"""Configuration of the reference server: principals, pacing, limits and wire variants.

Every field defaults to the form the spec documents (or, where the spec says two
things, the form READING.md calls preferred). The variant knobs exist so that the
suite can be shown to accept every legal reading of an ambiguity (READING.md,
"Known ambiguities"); each one names the READING row it exercises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

#: READING "Body size limits": no requirement; we refuse bodies above this (1 MiB).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

IdStyle = Literal["numeric", "prefixed"]
AnswerStyle = Literal["echo", "count"]
AuthModes = Literal["both", "by_class"]
LineEnding = Literal["\n", "\r\n", "\r"]
TerminalEvent = Literal["conversation.stream.done", "done"]
ErrorEvent = Literal["conversation.error", "error"]
StreamErrors = Literal["event", "envelope"]
RateGroup = Literal["chat", "management", "info"]
RateAlgorithm = Literal["sliding", "fixed"]
RateKey = Literal["principal", "user_id"]
RetryAfter = Literal["seconds", "http_date", "none"]


@dataclass(frozen=True)
class PrincipalConfig:
    """One API user: the name owns bots and conversations; either secret authenticates.

    The secrets are kept out of ``repr`` so a config never leaks them into a log or a
    test report.
    """

    name: str
    api_key: str = field(repr=False)
    session_key: str = field(repr=False)

    def __post_init__(self) -> None:
        for attr in ("name", "api_key", "session_key"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
                raise ValueError(
                    f"PrincipalConfig.{attr} must be a non-empty printable string without spaces"
                    f" (principal {self.name!r})"
                )
            if ";" in value or "," in value:
                # Both would break the Cookie header a client builds from the session key.
                raise ValueError(f"PrincipalConfig.{attr} must not contain ';' or ',' (principal {self.name!r})")


#: The documented development credentials (conformance/reference/README.md). Two
#: principals, because ownership (403 for another principal's bot) needs a second one.
DEV_PRINCIPALS: tuple[PrincipalConfig, ...] = (
    PrincipalConfig(name="alice", api_key="dev-alice-api-key", session_key="dev-alice-session-key"),
    PrincipalConfig(name="bob", api_key="dev-bob-api-key", session_key="dev-bob-session-key"),
)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the reference server can be told. All fields have documented defaults.

    Behaviour
      principals: who may call; defaults to :data:`DEV_PRINCIPALS`.
      token_delay: seconds between streamed tokens (0 in benchmarks and most tests).
      host, port: where to listen; port 0 picks a free port.
      max_body_bytes: request bodies above this are refused with 400 after reading at
        most this many bytes plus one.

    Rate limits (spec "速率限制": chat 60, management 30, info 100 per minute per user)
      rate_limits: False switches limiting off for tests that need volume.
      rate_window: the window in seconds.
      chat_limit, management_limit, info_limit: requests per window per principal
        (per key: see rate_key).
      clock: monotonic seconds; inject a fake one to test the window exactly.

    Rate-limit variants (each default is today's behaviour; every value is a legal
    limiter, READING rows "\"per user\" in the rate-limit table", "Rate-limit groups"
    and "`Retry-After`")
      rate_algorithm: "sliding" (a log: at most the limit in any window) or "fixed"
        (a count per window, the windows aligned to multiples of rate_window on the
        clock: up to twice the limit around an edge).
      rate_key: "principal" or "user_id" -- the chat group counted per principal and
        the body's ``user_id`` (a bounded peek at the body before the handler reads it,
        so a request still counts before it is validated); a request without one
        (cancel, /api/conversation/chat, a body with no string user_id, one too large
        to peek at) counts for the principal. Management and info: the principal.
      retry_after: the 429's ``Retry-After``: "seconds" (whole, rounded up),
        "http_date" (an IMF-fixdate, the reopening rounded up to the next second) or
        "none" (no header).
      rate_count_errors: False gives the slot of a request answered with an HTTP 4xx
        status other than 429 back (an error event in a 200 stream still counts;
        refusals never take a slot, whatever this says).
      cancel_limited: False takes /v3/chat/cancel out of the chat group ("chat or none").

    Variants (each default is the documented, preferred form)
      id_style: "numeric" -> conversation and message ids are strings of digits;
        "prefixed" -> ``conv_…`` / ``msg_…`` (READING "Id types").
      success_msg: the ``msg`` of a success envelope (READING "Success msg").
      answer_style: "echo" (turn number and the last user message) or "count" (another
        deterministic text) -- the suite must never assert an answer's content.
      forbidden_status: 403 or 404 for another principal's bot or conversation.
      unknown_id_status: 404 or 400 for an unknown bot or conversation id.
      auth_modes: "both" accepts Bearer and the ``session_key`` cookie everywhere;
        "by_class" accepts only Bearer on /v1 and /v3 and only the cookie on /api
        (READING "Auth per endpoint").
      start_events: send ``conversation.chat.created`` / ``in_progress``.
      line_ending, space_after_colon, sse_extras (comments, ``id:``, ``retry:``),
        multiline_data (payload over several ``data:`` lines), bom (leading U+FEFF),
        content_type, chunk_sizes ((min, max) bytes per write, splitting UTF-8
        characters; None writes one piece per event), chunk_seed: SSE framing
        (READING "SSE line format").
      terminal_event, error_event: the two documented names of each.
      keep_open_after_terminal: seconds the stream stays open after the terminal event
        (READING "After the terminal event").
      stream_errors: how an error found before a ``stream: true`` chat starts is
        answered -- "event": an event stream holding one error event (the spec's
        "流式响应中的错误通过 error 事件返回"); "envelope": the JSON error envelope
        (READING "Errors on a streaming request" allows both).

    Faults
      faults: names from conformance/reference/faults.py, each breaking one requirement.
      slow_answer_seconds: how long the chat_slow_answer fault holds a non-stream answer
        (over the spec's 30 s best practice by default).
    """

    principals: tuple[PrincipalConfig, ...] = DEV_PRINCIPALS
    token_delay: float = 0.02
    host: str = "127.0.0.1"
    port: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    rate_limits: bool = True
    rate_window: float = 60.0
    chat_limit: int = 60
    management_limit: int = 30
    info_limit: int = 100
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    # ---- rate-limit variants (READING "Rate-limit groups", "per user", "Retry-After")
    rate_algorithm: RateAlgorithm = "sliding"
    rate_key: RateKey = "principal"
    retry_after: RetryAfter = "seconds"
    rate_count_errors: bool = True
    cancel_limited: bool = True

    id_style: IdStyle = "numeric"
    success_msg: str = "success"
    answer_style: AnswerStyle = "echo"
    forbidden_status: Literal[403, 404] = 403
    unknown_id_status: Literal[404, 400] = 404
    auth_modes: AuthModes = "both"

    start_events: bool = True
    line_ending: LineEnding = "\n"
    space_after_colon: bool = True
    sse_extras: bool = False
    multiline_data: bool = False
    bom: bool = False
    content_type: str = "text/event-stream"
    chunk_sizes: tuple[int, int] | None = None
    chunk_seed: int = 0
    terminal_event: TerminalEvent = "conversation.stream.done"
    error_event: ErrorEvent = "conversation.error"
    keep_open_after_terminal: float = 0.0
    stream_errors: StreamErrors = "event"

    #: Deliberate breakages (conformance/reference/faults.py); empty = a clean server.
    faults: frozenset[str] = frozenset()
    slow_answer_seconds: float = 31.0

    def has(self, fault: str) -> bool:
        """Whether the fault named ``fault`` is switched on."""
        return fault in self.faults

    def __post_init__(self) -> None:
        from .faults import all_faults

        unknown = sorted(set(self.faults) - set(all_faults()))
        if unknown:
            raise ValueError(f"ServerConfig.faults: unknown fault(s) {unknown}; see conformance/reference/faults.py")
        _check_choice("id_style", self.id_style, ("numeric", "prefixed"))
        _check_choice("answer_style", self.answer_style, ("echo", "count"))
        _check_choice("forbidden_status", self.forbidden_status, (403, 404))
        _check_choice("unknown_id_status", self.unknown_id_status, (404, 400))
        _check_choice("auth_modes", self.auth_modes, ("both", "by_class"))
        _check_choice("line_ending", self.line_ending, ("\n", "\r\n", "\r"))
        _check_choice("terminal_event", self.terminal_event, ("conversation.stream.done", "done"))
        _check_choice("error_event", self.error_event, ("conversation.error", "error"))
        _check_choice("stream_errors", self.stream_errors, ("event", "envelope"))
        _check_choice("rate_algorithm", self.rate_algorithm, ("sliding", "fixed"))
        _check_choice("rate_key", self.rate_key, ("principal", "user_id"))
        _check_choice("retry_after", self.retry_after, ("seconds", "http_date", "none"))
        _check_choice("rate_count_errors", self.rate_count_errors, (True, False))
        _check_choice("cancel_limited", self.cancel_limited, (True, False))
        if not self.principals:
            raise ValueError("ServerConfig.principals must name at least one principal")
        names = [p.name for p in self.principals]
        secrets = [s for p in self.principals for s in (p.api_key, p.session_key)]
        if len(set(names)) != len(names):
            raise ValueError(f"ServerConfig.principals has duplicate names: {names}")
        if len(set(secrets)) != len(secrets):
            # A shared secret would make the principal of a request ambiguous.
            raise ValueError("ServerConfig.principals: every api_key and session_key must be distinct")
        _check_non_negative("token_delay", self.token_delay)
        _check_non_negative("keep_open_after_terminal", self.keep_open_after_terminal)
        _check_non_negative("slow_answer_seconds", self.slow_answer_seconds)
        if not 0 <= self.port <= 65535 or isinstance(self.port, bool):
            raise ValueError(f"ServerConfig.port must be 0..65535, got {self.port!r}")
        if self.max_body_bytes < 1:
            raise ValueError(f"ServerConfig.max_body_bytes must be positive, got {self.max_body_bytes!r}")
        if not self.rate_window > 0:
            raise ValueError(f"ServerConfig.rate_window must be positive, got {self.rate_window!r}")
        for name in ("chat_limit", "management_limit", "info_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerConfig.{name} must be a positive integer, got {value!r}")
        if not self.success_msg or not isinstance(self.success_msg, str):
            raise ValueError(f"ServerConfig.success_msg must be a non-empty string, got {self.success_msg!r}")
        media_type = self.content_type.partition(";")[0].strip().lower()
        if media_type != "text/event-stream" or "\r" in self.content_type or "\n" in self.content_type:
            raise ValueError(
                f"ServerConfig.content_type must be text/event-stream with optional parameters,"
                f" got {self.content_type!r}"
            )
        if self.chunk_sizes is not None:
            low, high = self.chunk_sizes
            if not 1 <= low <= high:
                raise ValueError(f"ServerConfig.chunk_sizes must be (min, max) with 1 <= min <= max, got {self.chunk_sizes!r}")

    def limit_for(self, group: RateGroup) -> int:
        """Requests allowed per window for one principal in one rate-limit group."""
        return {"chat": self.chat_limit, "management": self.management_limit, "info": self.info_limit}[group]


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    # `True == 1` would let a bool through an int choice; compare types as well.
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        raise ValueError(f"ServerConfig.{name} must be one of {choices!r}, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"ServerConfig.{name} must be a number >= 0, got {value!r}")
