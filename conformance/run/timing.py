"""Where a run's time went (the terminal's ``time:`` line and results.json's ``timing``).

Every process of the run (the only one without xdist, each worker with it) keeps one
:data:`TALLY` of what it spent:

* ``wait:<group>`` -- seconds the pacer slept before admitting a request of that rate
  group (``Pacer.acquire``);
* ``stream`` -- seconds a streamed answer was open (``PacedClient.stream``, from the
  request to the close: waiting for and reading the events);
* ``phase`` -- seconds inside the rate-limit phase's tests (marker ``ratelimit``),
  less the time they waited at the barrier for the other workers (``barrier``);
  what the phase spends streaming or waiting counts as phase, not twice;
* ``requests``: the paced requests sent, per ``principal|group``.

A part counts the time at least one of its spans was open, so two threads of one
process streaming at once count once. The reporter takes the process's new totals
into every test report (``TIMING_ATTR``); the controller adds them up
(:class:`RunTiming`) and, at the end, splits the run's wall time (:func:`summarise`).
Under xdist the parts are sums over the workers, each of which has the whole wall
time: "other" is then ``wall x workers`` less the parts.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BARRIER",
    "PHASE",
    "STREAM",
    "TALLY",
    "TIMING_ATTR",
    "RunTiming",
    "Tally",
    "TimeSplit",
    "WAIT_PREFIX",
    "budget_floor",
    "summarise",
]

#: The attribute of a test report that carries a process's new totals to the controller.
TIMING_ATTR = "conformance_timing"
STREAM = "stream"
PHASE = "phase"
BARRIER = "barrier"
WAIT_PREFIX = "wait:"


class Tally:
    """One process's running totals, thread-safe (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}
        self._requests: dict[str, int] = {}
        self._open: dict[str, int] = {}
        self._since: dict[str, float] = {}
        self._phase = 0  # rate-limit phase calls under way in this process
        self._phase_runs = 0
        self._taken: dict[str, Any] = {"seconds": {}, "requests": {}, "phase_runs": 0}

    def _accrue(self, part: str, now: float) -> None:
        if self._open.get(part):
            self._seconds[part] = self._seconds.get(part, 0.0) + now - self._since[part]
            self._since[part] = now

    @contextlib.contextmanager
    def span(self, part: str) -> Iterator[None]:
        """Count the time inside as ``part`` (once however many threads are inside;
        not at all inside the rate-limit phase, whose time is the phase's)."""
        with self._lock:
            if self._phase:
                counted = False
            else:
                counted = True
                now = self._clock()
                self._accrue(part, now)
                if not self._open.get(part):
                    self._since[part] = now
                self._open[part] = self._open.get(part, 0) + 1
        try:
            yield
        finally:
            if counted:
                with self._lock:
                    self._accrue(part, self._clock())
                    self._open[part] -= 1

    @contextlib.contextmanager
    def phase(self) -> Iterator[None]:
        """A test of the rate-limit phase: its time, less what :meth:`add` records as
        ``barrier`` meanwhile, is the phase's."""
        with self._lock:
            started, barrier = self._clock(), self._seconds.get(BARRIER, 0.0)
            self._phase += 1
            self._phase_runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._phase -= 1
                spent = self._clock() - started - (self._seconds.get(BARRIER, 0.0) - barrier)
                self._seconds[PHASE] = self._seconds.get(PHASE, 0.0) + max(0.0, spent)

    def add(self, part: str, seconds: float) -> None:
        with self._lock:
            self._seconds[part] = self._seconds.get(part, 0.0) + max(0.0, seconds)

    def count(self, key: str) -> None:
        """One paced request of ``key`` (``principal|group``) was sent."""
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1

    def take(self) -> dict[str, Any]:
        """What this process spent since the last :meth:`take` (spans still open count
        up to now), as ``{"seconds": {part: s}, "requests": {key: n}, "phase_runs": n}``
        with only the parts that grew."""
        with self._lock:
            now = self._clock()
            for part in self._open:
                self._accrue(part, now)
            before = self._taken
            seconds = {p: s - before["seconds"].get(p, 0.0) for p, s in self._seconds.items()}
            requests = {k: n - before["requests"].get(k, 0) for k, n in self._requests.items()}
            delta: dict[str, Any] = {
                "seconds": {p: round(s, 6) for p, s in seconds.items() if s > 0},
                "requests": {k: n for k, n in requests.items() if n > 0},
                "phase_runs": self._phase_runs - before["phase_runs"],
            }
            self._taken = {"seconds": dict(self._seconds), "requests": dict(self._requests), "phase_runs": self._phase_runs}
            return delta


#: The process's tally (the pacer, the paced client, the barrier and the reporter use it).
TALLY = Tally()


@dataclass
class RunTiming:
    """The controller's sum of every process's tallies, from the test reports."""

    seconds: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    phase_runs: int = 0
    workers: set[str] = field(default_factory=set)

    def add(self, delta: Mapping[str, Any] | None, worker: str | None) -> None:
        if worker is not None:
            self.workers.add(worker)
        if not delta:
            return
        for part, s in dict(delta.get("seconds", {})).items():
            self.seconds[str(part)] = self.seconds.get(str(part), 0.0) + float(s)
        for key, n in dict(delta.get("requests", {})).items():
            self.requests[str(key)] = self.requests.get(str(key), 0) + int(n)
        self.phase_runs += int(delta.get("phase_runs", 0))


def _group(key: str) -> str:
    return key.rsplit("|", 1)[-1]


def budget_floor(requests: Mapping[str, int], budgets: Mapping[str, int], window: float, *, phase_ran: bool) -> tuple[int, float]:
    """The least time the run's paced requests need under the budget, as (windows, seconds).

    The pacer admits at most ``budget`` requests of a (principal, group) in any window
    (``--rate-budget``, else the group's limit: the profile's, or ``--rate-limit``); a
    fresh budget admits ``budget`` at once, so ``n`` requests of one (principal, group)
    need at least ``ceil(n / budget) - 1`` windows after the first send. The floor is
    the largest such count over the keys ``principal|group`` of ``requests`` (the
    groups wait side by side), plus the one window the rate-limit phase cannot avoid
    when it ran (its bursts spend the budget; its retries come a window later), times
    ``window`` (the profile's or ``--rate-window``; the pacer's own margin left out).
    Keys of a group with no budget are ignored."""
    windows = max(
        (math.ceil(n / budgets[_group(k)]) - 1 for k, n in requests.items() if n > 0 and budgets.get(_group(k), 0) > 0),
        default=0,
    )
    windows += 1 if phase_ran else 0
    return windows, windows * window


@dataclass(frozen=True)
class TimeSplit:
    """A run's wall time split into its parts (see :func:`summarise`)."""

    wall: float
    workers: int
    waiting: dict[str, float]
    phase: float
    barrier: float
    streaming: float
    other: float
    requests: dict[str, int]
    budgets: dict[str, int]
    window: float
    floor_windows: int
    floor: float
    phase_ran: bool

    def line(self) -> str:
        """The terminal's one line."""
        head = f"time: {self.wall:.1f} s wall" + (f", parts summed over {self.workers} workers" if self.workers > 1 else "")
        waits = ", ".join(f"{group} {s:.1f} s" for group, s in self.waiting.items()) or "none"
        phase = f"rate-limit phase {self.phase:.1f} s" if self.phase_ran else "rate-limit phase not run"
        if self.barrier >= 0.05:
            phase += f" (after {self.barrier:.1f} s waiting for the other tests)"
        return (
            f"{head}; waiting for rate windows: {waits}; {phase}; streaming {self.streaming:.1f} s; "
            f"other {self.other:.1f} s; floor from the budget {self.floor:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``timing`` (schemas/reporting/results.schema.json)."""
        return {
            "wall_seconds": round(self.wall, 3),
            "workers": self.workers,
            "waiting_seconds": {g: round(s, 3) for g, s in self.waiting.items()},
            "ratelimit_phase_seconds": round(self.phase, 3),
            "ratelimit_phase_ran": self.phase_ran,
            "barrier_seconds": round(self.barrier, 3),
            "streaming_seconds": round(self.streaming, 3),
            "other_seconds": round(self.other, 3),
            "requests": dict(self.requests),
            "floor": {
                "seconds": round(self.floor, 3),
                "windows": self.floor_windows,
                "window_seconds": self.window,
                "budgets": dict(self.budgets),
            },
        }


def summarise(run: RunTiming, wall: float, groups: Iterable[str], budgets: Mapping[str, int], window: float) -> TimeSplit:
    """Split ``wall`` seconds: the waits per group (every group of ``groups``, in
    order), the phase, the barrier, streaming, and the rest. With ``w`` workers each
    part is a sum over them and "other" is ``wall x w`` less the parts (never below 0:
    parts of one process may overlap, e.g. a thread waiting while another streams)."""
    workers = max(1, len(run.workers))
    names = list(groups)
    waiting = {g: run.seconds.get(WAIT_PREFIX + g, 0.0) for g in names}
    for part, s in run.seconds.items():  # a group the profile does not list (never expected)
        if part.startswith(WAIT_PREFIX) and part[len(WAIT_PREFIX):] not in waiting:
            waiting[part[len(WAIT_PREFIX):]] = s
    phase, barrier, streaming = (run.seconds.get(p, 0.0) for p in (PHASE, BARRIER, STREAM))
    other = max(0.0, wall * workers - sum(waiting.values()) - phase - barrier - streaming)
    requests: dict[str, int] = {}
    for key, n in run.requests.items():
        requests[_group(key)] = requests.get(_group(key), 0) + n
    phase_ran = run.phase_runs > 0
    windows, floor = budget_floor(run.requests, budgets, window, phase_ran=phase_ran)
    return TimeSplit(
        wall=wall, workers=workers, waiting=waiting, phase=phase, barrier=barrier, streaming=streaming, other=other,
        requests={g: requests.get(g, 0) for g in [*names, *sorted(set(requests) - set(names))]},
        budgets=dict(budgets), window=window, floor_windows=windows, floor=floor, phase_ran=phase_ran,
    )
