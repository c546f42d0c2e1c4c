"""The barrier before the rate-limit phase: it starts only when every other suite test
of every process of the run has finished (a pytest plugin counting them in the run's
shared state), bounded by an idle timeout."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.keys import SUITE_DIR
from conformance.run.pacing import run_folder
from conformance.run.shared_state import SharedState
from conformance.run.timing import BARRIER, TALLY

PHASE_FILE = "conformance-phase.json"



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
    return SUITE_DIR in path.parents and item.get_closest_marker("ratelimit") is None


class PhaseBarrier:
    """pytest plugin: every process counts its finished non-rate-limit suite tests into
    the run folder; :meth:`wait` returns once the run-wide count reaches the number
    collected (every xdist worker collects the same items), or after ``idle_timeout``
    seconds without progress (a crashed worker must not hang the run)."""

    NAME = "conformance-phase-barrier"

    def __init__(self, config: pytest.Config | None, folder: Path | None = None) -> None:
        self.config = config
        self._file = SharedState(folder, PHASE_FILE) if folder is not None else None

    @property
    def state(self) -> SharedState:
        """The run's phase document (made on first use: the base temp dir of a worker
        exists only once pytest has configured it)."""
        if self._file is None:
            assert self.config is not None, "a PhaseBarrier needs a config or a folder"
            self._file = SharedState(run_folder(self.config), PHASE_FILE)
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
                TALLY.add(BARRIER, now - started)
                return BarrierResult(done, expected, now - started, False)
            if done != seen:
                seen, last_progress = done, now
            elif now - last_progress >= idle_timeout:
                TALLY.add(BARRIER, now - started)
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
