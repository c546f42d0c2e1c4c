"""Real-deployment discipline: the suite paces itself and waits out a 429.

* :class:`Pacer` -- one sliding log of send times per (principal, rate-limit group),
  kept in a locked JSON file in the run's folder (pytest's base temp dir, which every
  xdist worker shares), so all workers together send at most the group's budget per
  window. Budgets are the profile's documented limits unless overridden.
* :class:`PacedClient` -- an :class:`~conformance.transport.client.ApiClient` that asks the pacer
  before each request, and outside the rate-limit phase waits out a 429 (``Retry-After``
  in seconds or as an HTTP date, honoured up to the profile's cap, else one window) and
  sends the request again. A ``Retry-After`` beyond the cap ends the test with
  :class:`RateLimitedTooLong`, which names the header value.

The barrier that holds the rate-limit phase back is ``conformance.run.barrier``; the
phase itself is ``conformance.suite.ratelimit_phase``.

Why a sliding log and not a token bucket: a bucket of N refilled at N per minute lets
2N requests through in some 60 s span, which a sliding-window limiter (the reference
server's) refuses. At most N sends in any window is safe against a sliding window, a
fixed window and a bucket alike.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conformance.oracle.profile import Profile
from conformance.run.shared_state import SharedState
from conformance.run.timing import STREAM, TALLY, WAIT_PREFIX
from conformance.transport.client import (
    ApiClient,
    ApiResponse,
    ApiStream,
    Exchange,
    TransportError,
    parse_json,
)

__all__ = [
    "PACER_FILE",
    "WINDOW_MARGIN",
    "PacedClient",
    "Pacer",
    "RateLimitedTooLong",
    "pacer_for",
    "parse_retry_after",
    "fuzz_volume",
    "run_budgets",
    "run_folder",
    "unpaced",
]

PACER_FILE = "conformance-pacer.json"
#: Seconds added to the window: a request reaches the server later than it leaves
#: here, by a latency that varies; pacing a little slower than the limit is free.
WINDOW_MARGIN = 1.0
#: A 429 outside the phase is waited out at most this many times for one request.
MAX_RESENDS = 2
#: Bodies larger than this are not parsed for a refusal code (an envelope is small).
_REFUSAL_BODY_LIMIT = 64 * 1024


# --------------------------------------------------------------------------- the run's folder


def run_folder(config: pytest.Config) -> Path:
    """The folder every process of this run shares: pytest's base temp dir (xdist
    workers get ``<base>/popen-gwN`` and share its parent). The same folder as the
    suite's ``shared_state`` fixture; ``config._tmp_path_factory`` is the object the
    ``tmp_path_factory`` fixture returns, and the one xdist itself reads."""
    base = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


# --------------------------------------------------------------------------- Retry-After


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from ``now`` (epoch seconds) for a ``Retry-After`` value --
    delay-seconds or an HTTP date (RFC 9110 10.2.3) -- or None when absent or
    unreadable. A date in the past means 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT, so read it as such
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


# --------------------------------------------------------------------------- the pacer


def _key(principal: str, group: str) -> str:
    return f"{principal}|{group}"


class Pacer:
    """Per (principal, group): at most ``budget`` sends in any ``window + margin``
    seconds, across every process of the run; and a hold after a 429 that makes every
    process wait for the group until the server said it may be asked again."""

    def __init__(
        self,
        folder: Path,
        profile: Profile,
        *,
        budgets: Mapping[str, int] | None = None,
        margin: float = WINDOW_MARGIN,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        limits = profile.ratelimits
        self.window = limits.window_seconds
        self.margin = margin
        self.refusal_code = limits.refusal_code
        self.stream_media_type = str(profile.stream["media_type"])
        self.retry_after_cap = limits.retry_after_max_seconds
        self.limits = {g.name: g.limit for g in limits.groups}
        given = dict(budgets or {})
        unknown = sorted(set(given) - set(self.limits))
        if unknown:
            raise ValueError(f"rate budget for unknown group(s) {unknown}; groups: {sorted(self.limits)}")
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"rate budget of {name!r} must be a whole number >= 1, got {value!r}")
        self.budgets = {name: given.get(name, limit) for name, limit in self.limits.items()}
        # (method, path segments, group): how a request finds its group (profile data).
        self._routes = [
            (e.method, e.path.split("/"), limits.group_of(e.name).name)
            for e in profile.endpoints
            if any(e.name in g.endpoints for g in limits.groups)
        ]
        self._file = SharedState(folder, PACER_FILE)
        self._clock = clock
        self._sleep = sleep

    def group_for(self, method: str, path: str) -> str | None:
        """The rate-limit group of ``method path`` (query ignored); None off the table
        (an unknown route is nobody's group: no pacing)."""
        parts = path.split("?", 1)[0].split("/")
        for route_method, pattern, group in self._routes:
            if route_method == method.upper() and len(pattern) == len(parts):
                if all(p.startswith(":") or p == q for p, q in zip(pattern, parts, strict=True)):
                    return group
        return None

    def acquire(self, principal: str, group: str) -> float:
        """Block until ``principal`` may send one request of ``group`` and record the
        send; returns the seconds waited. Never waits longer than one window (or a
        hold, itself capped at the Retry-After cap)."""
        key, budget, span = _key(principal, group), self.budgets[group], self.window + self.margin
        waited = 0.0
        while True:
            now = self._clock()

            def step(data: dict[str, Any], now: float = now, waited: float = waited) -> float | None:
                sends = [t for t in data.setdefault("sends", {}).get(key, []) if t > now - span]
                hold = float(data.setdefault("holds", {}).get(key, 0.0))
                if now >= hold and len(sends) < budget:
                    data["sends"][key] = [*sends, now]
                    if waited:
                        totals = data.setdefault("waited", {})
                        totals[key] = totals.get(key, 0.0) + waited
                    return None
                data["sends"][key] = sends
                free = sends[len(sends) - budget] + span if len(sends) >= budget else now
                return max(hold, free)

            wake = self._file.update(step)
            if wake is None:
                TALLY.count(key)
                return waited
            pause = min(max(wake - now, 0.01), span)
            with TALLY.span(WAIT_PREFIX + group):
                self._sleep(pause)
            waited += pause

    def hold(self, principal: str, group: str, until: float) -> None:
        """No process sends ``group`` for ``principal`` before ``until`` (epoch s)."""
        key = _key(principal, group)

        def step(data: dict[str, Any]) -> None:
            holds = data.setdefault("holds", {})
            holds[key] = max(float(holds.get(key, 0.0)), until)
            refusals = data.setdefault("refusals", {})
            refusals[key] = refusals.get(key, 0) + 1

        self._file.update(step)

    def last_send(self, principal: str, group: str) -> float | None:
        sends = self._file.read().get("sends", {}).get(_key(principal, group), [])
        return max(sends) if sends else None

    def stats(self) -> dict[str, Any]:
        """``{"waited": {key: seconds}, "refusals": {key: count}}`` of the whole run."""
        data = self._file.read()
        return {"waited": dict(data.get("waited", {})), "refusals": dict(data.get("refusals", {}))}


def run_budgets(settings: Any) -> dict[str, int]:
    """Requests per window the run allows itself per group: ``--rate-budget`` where
    given, else the group's limit (the profile's, or ``--rate-limit``)."""
    from conformance.oracle.profile import target_profile

    budgets = {g.name: g.limit for g in target_profile(settings).ratelimits.groups}
    budgets.update(dict(getattr(settings, "rate_budgets", ()) or ()))
    return budgets


def fuzz_volume(settings: Any) -> tuple[Mapping[str, int] | int, str]:
    """Drawn fuzz examples per endpoint, and a line saying why: ``--fuzz-examples`` when
    given; else the embedded server's quick plan; else, against a remote target, what
    the rate budget leaves in the windows the run needs anyway
    (``conformance.oracle.strategies.budget_examples``)."""
    from conformance.oracle.profile import target_profile
    from conformance.oracle.strategies import EMBEDDED_EXAMPLES, budget_examples

    if settings.fuzz_examples is not None:
        return settings.fuzz_examples, f"fuzz: {settings.fuzz_examples} examples per endpoint (--fuzz-examples)"
    if settings.embedded:
        shown = ", ".join(f"{name} {n}" for name, n in EMBEDDED_EXAMPLES.items())
        return EMBEDDED_EXAMPLES, f"fuzz: the embedded server's plan: {shown}"
    planned = budget_examples(target_profile(settings), run_budgets(settings))
    return planned.examples, f"fuzz: {planned.describe()}; --fuzz-examples N for more"


_PACER_KEY = pytest.StashKey[Pacer]()


def pacer_for(config: pytest.Config) -> Pacer | None:
    """The run's pacer (one per process, sharing the run folder), or None outside a
    conformance run. Budgets: ``--rate-budget GROUP=N`` when the settings carry it."""
    from conformance.keys import SETTINGS_KEY
    from conformance.oracle.profile import target_profile

    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return None
    pacer = config.stash.get(_PACER_KEY, None)
    if pacer is None:
        budgets = dict(getattr(settings, "rate_budgets", ()) or ())
        profile = target_profile(settings)
        pacer = Pacer(run_folder(config), profile, budgets=budgets)
        config.stash[_PACER_KEY] = pacer
    return pacer


# --------------------------------------------------------------------------- the paced client


class RateLimitedTooLong(TransportError):
    """A 429 the suite will not wait out: ``Retry-After`` beyond the cap, or refused
    again after every wait. A TransportError, because the request got no usable
    answer: the plugin FAILs the test's requirements with this message."""


#: HTTP's own Too Many Requests: a refusal under every profile, whatever its body code.
HTTP_TOO_MANY_REQUESTS = 429


def _is_refusal(status: int, body: bytes, refusal: int) -> bool:
    """Whether an answer is a rate-limit refusal: HTTP 429, or the profile's refusal
    code in the body (doc: 429, READING "HTTP status of errors": the body code decides;
    coze: 4013, which the cloud sends with HTTP 200)."""
    if status in (refusal, HTTP_TOO_MANY_REQUESTS):
        return True
    if not body or len(body) > _REFUSAL_BODY_LIMIT:
        return False
    try:
        data = parse_json(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("code") == refusal and not isinstance(data.get("code"), bool)


class PacedClient(ApiClient):
    """An :class:`ApiClient` that paces every request of a rate-limit group through
    ``pacer`` and waits out 429s (see the module docstring). ``pacer=None`` is a
    plain client. :meth:`unpaced` is the rate-limit phase's view: no pacing, no
    waiting, every 429 reaches the test."""

    def __init__(self, base_url: str, principal: Any, *, pacer: Pacer | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, principal, **kwargs)
        self.pacer = pacer

    def with_log(self, log: Any) -> PacedClient:
        view = super().with_log(log)
        # ApiClient.with_log makes a plain ApiClient; the view must keep pacing.
        view.__class__ = type(self)
        assert isinstance(view, PacedClient)
        return view

    def unpaced(self) -> PacedClient:
        view = self.with_log(self.log)
        view.pacer = None
        return view

    def _who(self, path: str, auth: str) -> str:
        mode = self.resolve_auth(path.split("?", 1)[0], auth)
        if mode.startswith("other") and self.other is not None:
            return self.other.label
        return self.principal.label

    def _wait_out(self, pacer: Pacer, principal: str, group: str, exchange: Exchange, headers: Any, tries: int) -> None:
        """Hold the group until the server's Retry-After (or one window), or give up."""
        what = f"{exchange.method} {exchange.path}"
        value = headers.get("retry-after")
        now = time.time()
        delay = parse_retry_after(value, now)
        if value is not None and delay is not None and delay > pacer.retry_after_cap:
            raise RateLimitedTooLong(
                f"{what}: answered 429 with Retry-After: {value!r}, more than the {pacer.retry_after_cap:g} s "
                "the suite honours (READING \"Retry-After\")",
                exchange=exchange,
                cause=f"Retry-After: {value!r}",
            )
        if tries > MAX_RESENDS:
            raise RateLimitedTooLong(
                f"{what}: still answered 429 after {MAX_RESENDS} waits"
                + (f" (last Retry-After: {value!r})" if value is not None else ""),
                exchange=exchange,
                cause="still rate-limited",
            )
        pacer.hold(principal, group, now + (pacer.window if delay is None else delay))

    def request(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        pacer = self.pacer
        group = pacer.group_for(method, path) if pacer is not None else None
        if pacer is None or group is None:
            return super().request(method, path, **kwargs)
        principal = self._who(path, kwargs.get("auth", "default"))
        tries = 0
        while True:
            pacer.acquire(principal, group)
            answer = super().request(method, path, **kwargs)
            if not _is_refusal(answer.status, answer.body, pacer.refusal_code):
                return answer
            tries += 1
            self._wait_out(pacer, principal, group, answer.exchange, answer.headers, tries)

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[ApiStream]:
        """As :meth:`ApiClient.stream`; a refusal here is HTTP 429, or body code 429 in an
        answer that is no event stream (READING "HTTP status of errors": the body code
        decides, so a 429 may come with HTTP 200). Such an answer is read whole to see
        its code; the test reads it again with ``read_all``. An event stream is never
        read here: that would consume the test's stream."""
        pacer = self.pacer
        group = pacer.group_for(method, path) if pacer is not None else None
        if pacer is None or group is None:
            with TALLY.span(STREAM), super().stream(method, path, **kwargs) as answer:
                yield answer
            return
        principal = self._who(path, kwargs.get("auth", "default"))
        tries = 0
        while True:
            pacer.acquire(principal, group)
            with TALLY.span(STREAM), super().stream(method, path, **kwargs) as answer:
                refused = answer.status in (pacer.refusal_code, HTTP_TOO_MANY_REQUESTS)
                if not refused and answer.media_type != pacer.stream_media_type:
                    refused = _is_refusal(answer.status, answer.read_all(), pacer.refusal_code)
                if not refused:
                    yield answer
                    return
                answer.read_all()
                tries += 1
                self._wait_out(pacer, principal, group, answer.exchange, answer.headers, tries)


def unpaced(client: ApiClient) -> ApiClient:
    """``client`` without pacing or 429 handling (the rate-limit phase sends bursts)."""
    return client.unpaced() if isinstance(client, PacedClient) else client
