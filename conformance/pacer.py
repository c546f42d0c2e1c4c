"""Real-deployment discipline (issue 6): the suite paces itself, waits out a 429, and
holds the rate-limit phase back until every other test has finished.

* :class:`Pacer` -- one sliding log of send times per (principal, rate-limit group),
  kept in a locked JSON file in the run's folder (pytest's base temp dir, which every
  xdist worker shares), so all workers together send at most the group's budget per
  window. Budgets are the profile's documented limits unless overridden.
* :class:`PacedClient` -- an :class:`~conformance.client.ApiClient` that asks the pacer
  before each request, and outside the rate-limit phase waits out a 429 (``Retry-After``
  in seconds or as an HTTP date, honoured up to the profile's cap, else one window) and
  sends the request again. A ``Retry-After`` beyond the cap ends the test with
  :class:`RateLimitedTooLong`, which names the header value.
* :class:`PhaseBarrier` -- a pytest plugin counting the finished non-rate-limit suite
  tests of all workers, so the phase starts only when the count reaches what was
  collected (bounded by an idle timeout).
* The phase's machinery: a :class:`Probe` per group, :func:`send_probe` (streams closed
  after their first event), :func:`run_burst`, and the pure verdict rules
  (:func:`burst_verdict`, :func:`exact_findings`, :func:`retry_ready_at`) that
  ``conformance/suite/test_ratelimit.py`` judges with.

Why a sliding log and not a token bucket: a bucket of N refilled at N per minute lets
2N requests through in some 60 s span, which a sliding-window limiter (the reference
server's) refuses. At most N sends in any window is safe against a sliding window, a
fixed window and a bucket alike.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from filelock import FileLock

from conformance.client import NO_BODY, ApiClient, ApiResponse, ApiStream, Exchange, TransportError, parse_json
from conformance.envelope import error_event_code
from conformance.profile import Profile

__all__ = [
    "PACER_FILE",
    "PHASE_FILE",
    "Attempt",
    "BarrierResult",
    "Burst",
    "PacedClient",
    "Pacer",
    "PhaseBarrier",
    "Probe",
    "RateLimitedTooLong",
    "burst_verdict",
    "counts_for_barrier",
    "exact_findings",
    "idle_since",
    "in_parallel",
    "install_barrier",
    "pacer_for",
    "parse_retry_after",
    "retry_ready_at",
    "run_burst",
    "run_folder",
    "send_probe",
    "unpaced",
    "wait_until",
]

PACER_FILE = "conformance-pacer.json"
PHASE_FILE = "conformance-phase.json"
#: Seconds added to the window: a request reaches the server later than it leaves
#: here, by a latency that varies; pacing a little slower than the limit is free.
WINDOW_MARGIN = 1.0
#: A 429 outside the phase is waited out at most this many times for one request.
MAX_RESENDS = 2
#: Bodies larger than this are not parsed for a refusal code (an envelope is small).
_REFUSAL_BODY_LIMIT = 64 * 1024
_LOCK_TIMEOUT = 60.0
_SUITE_DIR = Path(__file__).resolve().parent / "suite"


# --------------------------------------------------------------------------- the run's folder


def run_folder(config: pytest.Config) -> Path:
    """The folder every process of this run shares: pytest's base temp dir (xdist
    workers get ``<base>/popen-gwN`` and share its parent). The same folder as the
    suite's ``shared_state`` fixture; ``config._tmp_path_factory`` is the object the
    ``tmp_path_factory`` fixture returns, and the one xdist itself reads."""
    base = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


class _JsonFile:
    """A small JSON document read, changed and written under a file lock, so the
    processes of a run see one consistent state (the pattern of conformance.shared)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to the document (in place) and store it; returns its result."""
        with self._lock:
            data = self._read()
            result = change(data)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(self.path)
            return result

    def read(self) -> dict[str, Any]:
        with self._lock:
            return self._read()


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
        when = when.replace(tzinfo=datetime.timezone.utc)
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
        self._file = _JsonFile(folder / PACER_FILE)
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

            def step(data: dict[str, Any], now: float = now) -> float | None:
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
                return waited
            pause = min(max(wake - now, 0.01), span)
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


_PACER_KEY = pytest.StashKey[Pacer]()


def pacer_for(config: pytest.Config) -> Pacer | None:
    """The run's pacer (one per process, sharing the run folder), or None outside a
    conformance run. Budgets: ``--rate-budget GROUP=N`` when the settings carry it."""
    from conformance.plugin import SETTINGS_KEY
    from conformance.profile import target_profile

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


def _is_refusal(status: int, body: bytes, refusal: int) -> bool:
    """Whether an answer is a rate-limit refusal: HTTP 429 or body code 429 (READING
    "HTTP status of errors": the body code decides, the status is SHOULD)."""
    if status == refusal:
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
            with super().stream(method, path, **kwargs) as answer:
                yield answer
            return
        principal = self._who(path, kwargs.get("auth", "default"))
        tries = 0
        while True:
            pacer.acquire(principal, group)
            with super().stream(method, path, **kwargs) as answer:
                refused = answer.status == pacer.refusal_code
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


# --------------------------------------------------------------------------- the phase barrier


@dataclass(frozen=True)
class BarrierResult:
    done: int
    expected: int
    waited: float
    timed_out: bool

    def describe(self) -> str:
        state = "gave up waiting" if self.timed_out else "released"
        return f"{state} after {self.waited:.1f} s: {self.done} of {self.expected} other suite tests finished"


def counts_for_barrier(item: pytest.Item) -> bool:
    """A suite test outside the rate-limit phase (the phase waits for these)."""
    path = Path(str(item.path)).resolve()
    return _SUITE_DIR in path.parents and item.get_closest_marker("ratelimit") is None


class PhaseBarrier:
    """pytest plugin: every process counts its finished non-rate-limit suite tests into
    the run folder; :meth:`wait` returns once the run-wide count reaches the number
    collected (every xdist worker collects the same items), or after ``idle_timeout``
    seconds without progress (a crashed worker must not hang the run)."""

    NAME = "conformance-phase-barrier"

    def __init__(self, config: pytest.Config | None, folder: Path | None = None) -> None:
        self.config = config
        self._file = _JsonFile(folder / PHASE_FILE) if folder is not None else None

    @property
    def state(self) -> _JsonFile:
        """The run's phase document (made on first use: the base temp dir of a worker
        exists only once pytest has configured it)."""
        if self._file is None:
            assert self.config is not None, "a PhaseBarrier needs a config or a folder"
            self._file = _JsonFile(run_folder(self.config) / PHASE_FILE)
        return self._file

    def finished(self) -> None:
        """Count one finished non-phase test (the hook below calls it)."""

        def step(data: dict[str, Any]) -> None:
            data["done"] = int(data.get("done", 0)) + 1
            data["last_finished_at"] = max(float(data.get("last_finished_at", 0.0)), time.time())

        self.state.update(step)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
        try:
            return (yield)
        finally:
            if counts_for_barrier(item):
                self.finished()

    def wait(
        self,
        expected: int,
        *,
        idle_timeout: float,
        poll: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> BarrierResult:
        started = last_progress = clock()
        seen = -1
        while True:
            done = int(self.state.read().get("done", 0))
            now = clock()
            if done >= expected:
                return BarrierResult(done, expected, now - started, False)
            if done != seen:
                seen, last_progress = done, now
            elif now - last_progress >= idle_timeout:
                return BarrierResult(done, expected, now - started, True)
            sleep(poll)

    def mark_started(self, result: BarrierResult) -> None:
        """Record when the phase began (self-tests check no other test ran after it)."""

        def step(data: dict[str, Any]) -> None:
            data["started_at"] = time.time()
            data["expected"] = result.expected
            data["timed_out"] = result.timed_out

        self.state.update(step)


def install_barrier(config: pytest.Config) -> PhaseBarrier:
    """The run's barrier plugin, registered on first call (idempotent)."""
    plugin = config.pluginmanager.get_plugin(PhaseBarrier.NAME)
    if plugin is None:
        plugin = PhaseBarrier(config)
        config.pluginmanager.register(plugin, PhaseBarrier.NAME)
    assert isinstance(plugin, PhaseBarrier)
    return plugin


# --------------------------------------------------------------------------- the phase: bursts


@dataclass(frozen=True)
class Probe:
    """One request of a rate-limit group that succeeds when admitted (READING
    "Rate-limit groups": whether 4xx answers count is not said, so a burst must be
    made of requests that would succeed)."""

    group: str
    method: str
    path: str
    json: Any = NO_BODY
    params: Mapping[str, str] | None = None
    stream: bool = False


Verdict = Literal["admitted", "refused", "other"]


@dataclass(frozen=True)
class Attempt:
    """One request of a burst: when it left and was answered (epoch s), and what came."""

    index: int
    started: float
    answered: float
    outcome: Verdict
    status: int | None = None
    code: Any = None
    retry_after: str | None = None
    #: For a refusal: whether it is the envelope with the refusal code (RATE-004).
    envelope_ok: bool | None = None
    detail: str = ""


def _short(body: bytes | str, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "..."


def _judge_body(status: int, body: bytes, refusal: int) -> tuple[Verdict, Any, bool | None]:
    try:
        data = parse_json(body)
    except ValueError:
        data = None
    code = data.get("code") if isinstance(data, dict) else None
    if status == refusal or (code == refusal and not isinstance(code, bool)):
        shaped = isinstance(data, dict) and code == refusal and isinstance(data.get("msg"), str)
        return "refused", code, bool(shaped and not isinstance(code, bool))
    if status < 400 and code == 0 and not isinstance(code, bool):
        return "admitted", code, None
    return "other", code, None


def send_probe(client: ApiClient, probe: Probe, index: int, profile: Profile) -> Attempt:
    """Send one probe and classify the answer. A stream is closed after its first event
    (a refusal may come as an error event first, READING "Errors on a streaming request");
    an answer that is not an event stream is read whole as an envelope."""
    from conformance.sse import SSEChecker

    refusal = profile.ratelimits.refusal_code
    started = time.time()
    try:
        if not probe.stream:
            answer = client.request(probe.method, probe.path, json=probe.json, params=probe.params)
            outcome, code, shaped = _judge_body(answer.status, answer.body, refusal)
            return Attempt(
                index, started, time.time(), outcome, answer.status, code,
                answer.headers.get("retry-after"), shaped, _short(answer.body),
            )
        media_type = str(profile.stream["media_type"])
        error_events = set(profile.stream["error_events"])
        with client.stream(probe.method, probe.path, json=probe.json, params=probe.params) as stream:
            retry_after = stream.headers.get("retry-after")
            if stream.media_type != media_type:
                body = stream.read_all()
                outcome, code, shaped = _judge_body(stream.status, body, refusal)
                return Attempt(index, started, time.time(), outcome, stream.status, code, retry_after, shaped, _short(body))
            checker = SSEChecker(stream.headers.get("content-type"), media_type)
            for chunk, t in stream.chunks():
                events = checker.feed(chunk, t)
                if events:
                    first = events[0]
                    if first.type in error_events:
                        code = error_event_code(first.data)
                        if code == refusal:
                            return Attempt(index, started, time.time(), "refused", stream.status, code, retry_after, True, _short(first.data))
                        return Attempt(index, started, time.time(), "other", stream.status, code, retry_after, None, _short(first.data))
                    outcome = "admitted" if stream.status < 400 else "other"
                    return Attempt(index, started, time.time(), outcome, stream.status, None, retry_after, None, first.type)
            outcome = "refused" if stream.status == refusal else "other"
            return Attempt(index, started, time.time(), outcome, stream.status, None, retry_after, False if outcome == "refused" else None, "event stream ended before its first event")
    except TransportError as exc:
        return Attempt(index, started, time.time(), "other", None, None, None, None, exc.reason)


@dataclass
class Burst:
    """Up to ``planned`` requests of one group, sent concurrently within ``budget_seconds``."""

    group: str
    limit: int
    planned: int
    budget_seconds: float
    started: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.attempts)

    @property
    def refusals(self) -> list[Attempt]:
        return sorted((a for a in self.attempts if a.outcome == "refused"), key=lambda a: a.answered)

    @property
    def admitted(self) -> int:
        return sum(1 for a in self.attempts if a.outcome == "admitted")

    @property
    def send_seconds(self) -> float:
        """From the first request's start to the last one's start."""
        return max((a.started for a in self.attempts), default=self.started) - self.started

    @property
    def span_seconds(self) -> float:
        """From the first request's start to the last answer."""
        return max((a.answered for a in self.attempts), default=self.started) - self.started

    def describe(self) -> str:
        counts = {o: sum(1 for a in self.attempts if a.outcome == o) for o in ("admitted", "refused", "other")}
        return (
            f"{self.group}: {self.sent} of {self.planned} requests sent in {self.send_seconds:.1f} s "
            f"(answered within {self.span_seconds:.1f} s): {counts['admitted']} admitted, "
            f"{counts['refused']} refused, {counts['other']} other"
        )


def run_burst(
    send: Callable[[int], Attempt],
    *,
    group: str,
    limit: int,
    planned: int,
    budget_seconds: float,
    workers: int,
    max_workers: int | None = None,
    stop_at_refusal: bool = True,
) -> Burst:
    """Send up to ``planned`` requests with ``workers`` threads, and more (up to
    ``max_workers``) while the burst falls behind the pace that sends them all within
    80 % of ``budget_seconds`` -- a server whose first event comes late holds every
    thread, and a burst spread over more than the budget proves nothing. No request
    starts after ``budget_seconds``; with ``stop_at_refusal`` none starts after the
    first refusal arrived (the verdict needs one, and every request may cost money)."""
    burst = Burst(group, limit, planned, budget_seconds, started=time.time())
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(planned))
    taken = [0]
    crashed: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if stop.is_set() or time.time() - burst.started > budget_seconds:
                    return
                index = next(counter, None)
                if index is not None:
                    taken[0] += 1
            if index is None:
                return
            try:
                attempt = send(index)
            except BaseException as exc:  # a suite bug: surface it in the test, not a thread
                crashed.append(exc)
                stop.set()
                return
            with lock:
                burst.attempts.append(attempt)
                if attempt.outcome == "refused" and stop_at_refusal:
                    stop.set()

    threads: list[threading.Thread] = []

    def spawn() -> None:
        thread = threading.Thread(target=work, name=f"burst-{group}-{len(threads)}", daemon=True)
        threads.append(thread)
        thread.start()

    for _ in range(max(1, workers)):
        spawn()
    ceiling = max(workers, max_workers or workers)
    while any(t.is_alive() for t in threads):
        time.sleep(BURST_TICK)
        elapsed = time.time() - burst.started
        with lock:
            started, done = taken[0], len(burst.attempts)
        if stop.is_set() or started >= planned or elapsed > budget_seconds:
            continue
        due = planned * min(1.0, elapsed / (BURST_PACE_SHARE * budget_seconds))
        idle = len([t for t in threads if t.is_alive()]) - (started - done)
        for _ in range(min(ceiling - len(threads), math.ceil(due - started) - max(0, idle))):
            spawn()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]
    burst.attempts.sort(key=lambda a: a.started)
    return burst


#: How often a burst checks its pace, and the share of its budget it aims to be sent in.
BURST_TICK = 0.05
BURST_PACE_SHARE = 0.8


def in_parallel(*targets: Callable[[], None], count: int = 1, name: str = "phase") -> None:
    """Run every target ``count`` times, each in its own thread, and wait for all;
    the first exception of any thread is raised here."""
    crashed: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            crashed.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(target,), name=f"{name}-{i}-{n}", daemon=True)
        for i, target in enumerate(targets)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]


BurstVerdict = Literal["pass", "fail", "inconclusive"]


def burst_verdict(burst: Burst) -> BurstVerdict:
    """issue 6: PASS when a refusal appeared; FAIL when none appeared among all the
    planned requests sent within the budget; inconclusive when they could not all be
    sent in time (a slow server is not a missing limiter). Never asserts that the
    first N succeed."""
    if burst.refusals:
        return "pass"
    if burst.sent >= burst.planned and burst.send_seconds <= burst.budget_seconds:
        return "fail"
    return "inconclusive"


@dataclass(frozen=True)
class ExactFindings:
    """--ratelimit-exact, after >= one idle window: at least N admitted (SHOULD), and a
    refusal within N * (floor(d / window) + 2) + 1 requests, d the burst's seconds."""

    admitted_at_least_limit: bool
    refused_within_bound: bool
    bound: int
    admitted: int
    #: requests with no readable answer (a deadline, a reset): each may have been admitted
    unanswered: int = 0


def exact_findings(burst: Burst, window: float) -> ExactFindings:
    # Order-free on purpose: concurrent requests reach the server in any order, so
    # "the first N" is read as "N were admitted" and "a 429 by request M" as "at most
    # M - 1 were admitted", both exact for a limiter that admits in arrival order.
    # The bound is a fixed-window limiter's, the loosest legal one (READING "Rate-limit
    # groups" leaves the algorithm open): a burst of d seconds touches at most
    # floor(d / window) + 2 of its windows, N each -- 2N for a burst across an edge. A
    # sliding window admits fewer (N + ceil(N * d / window)); telling the two apart
    # would need the server's clock.
    d = burst.span_seconds
    bound = burst.limit * (math.floor(d / window) + 2)
    return ExactFindings(
        admitted_at_least_limit=burst.admitted >= burst.limit,
        refused_within_bound=bool(burst.refusals) and burst.admitted <= bound,
        bound=bound + 1,
        admitted=burst.admitted,
        unanswered=sum(1 for a in burst.attempts if a.outcome == "other"),
    )


def retry_ready_at(burst: Burst, *, cap: float, window: float, margin: float = WINDOW_MARGIN) -> float | None:
    """When a request of this group must succeed again (epoch s), None without a
    refusal: every refusal's ``Retry-After`` honoured up to ``cap`` (the latest wins),
    or, when no refusal carried a readable one, one window after the burst's last
    request left (best practice 3; READING "Retry-After")."""
    refusals = burst.refusals
    if not refusals:
        return None
    promised = [
        a.answered + min(delay, cap)
        for a in refusals
        if (delay := parse_retry_after(a.retry_after, a.answered)) is not None
    ]
    if promised:
        return max(promised)
    return max(a.started for a in burst.attempts) + window + margin


def wait_until(when: float, *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Sleep until epoch second ``when``; returns the seconds slept."""
    delay = max(0.0, when - time.time())
    if delay:
        sleep(delay)
    return delay


def idle_since(pacer: Pacer | None, principal: str, groups: Sequence[str]) -> float | None:
    """The epoch second of the principal's last paced send in any of ``groups``."""
    if pacer is None:
        return None
    sends = [t for g in groups if (t := pacer.last_send(principal, g)) is not None]
    return max(sends) if sends else None
