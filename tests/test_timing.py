"""Where a run's time went: the floor the budget sets, the per-process tally, the split."""

from __future__ import annotations

import threading

import pytest

from conformance.run.timing import BARRIER, PHASE, STREAM, WAIT_PREFIX, RunTiming, Tally, budget_floor, summarise

BUDGETS = {"chat": 60, "management": 30, "info": 100}


@pytest.mark.parametrize(
    ("requests", "phase_ran", "windows"),
    [
        pytest.param({}, False, 0, id="nothing-sent"),
        pytest.param({}, True, 1, id="only-the-phase"),
        pytest.param({"p1|chat": 60}, False, 0, id="one-fresh-budget-admits-all"),
        pytest.param({"p1|chat": 61}, False, 1, id="one-more-needs-a-window"),
        pytest.param({"p1|chat": 120, "p1|management": 91}, False, 3, id="the-slowest-group-decides"),
        pytest.param({"p1|management": 30, "p2|management": 30}, False, 0, id="per-principal"),
        pytest.param({"p1|chat": 121, "p1|info": 5}, True, 3, id="plus-the-phase-window"),
        pytest.param({"p1|unknown": 500}, False, 0, id="a-group-without-budget-is-ignored"),
    ],
)
def test_budget_floor(requests: dict[str, int], phase_ran: bool, windows: int) -> None:
    assert budget_floor(requests, BUDGETS, 60.0, phase_ran=phase_ran) == (windows, windows * 60.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_span_counts_once_however_many_threads_are_inside() -> None:
    clock = Clock()
    tally = Tally(clock)
    with tally.span(STREAM):
        clock.now = 1.0
        with tally.span(STREAM):  # a second thread's stream, overlapping
            clock.now = 3.0
        clock.now = 4.0
    clock.now = 10.0
    assert tally.take() == {"seconds": {STREAM: 4.0}, "requests": {}, "phase_runs": 0}
    assert tally.take() == {"seconds": {}, "requests": {}, "phase_runs": 0}


def test_take_counts_an_open_span_up_to_now_and_the_rest_later() -> None:
    clock = Clock()
    tally = Tally(clock)
    with tally.span(WAIT_PREFIX + "chat"):
        clock.now = 2.0
        assert tally.take()["seconds"] == {"wait:chat": 2.0}
        clock.now = 5.0
    assert tally.take()["seconds"] == {"wait:chat": 3.0}


def test_the_phase_absorbs_its_streams_and_leaves_out_the_barrier() -> None:
    clock = Clock()
    tally = Tally(clock)
    tally.count("p1|chat")
    with tally.phase():
        clock.now = 7.0
        tally.add(BARRIER, 7.0)  # waited for the other workers
        with tally.span(STREAM):
            clock.now = 9.0
        clock.now = 10.0
    assert tally.take() == {"seconds": {PHASE: 3.0, BARRIER: 7.0}, "requests": {"p1|chat": 1}, "phase_runs": 1}


def test_the_tally_is_thread_safe() -> None:
    tally = Tally()

    def work() -> None:
        for _ in range(1000):
            tally.count("p1|info")
            with tally.span(STREAM):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tally.take()["requests"] == {"p1|info": 4000}


def test_summarise_splits_the_wall_time_of_every_worker() -> None:
    run = RunTiming()
    run.add({"seconds": {"wait:chat": 30.0, STREAM: 5.0}, "requests": {"p1|chat": 61}, "phase_runs": 0}, "gw0")
    run.add({"seconds": {PHASE: 40.0, BARRIER: 10.0}, "requests": {"p1|chat": 2, "p2|info": 1}, "phase_runs": 1}, "gw1")
    run.add(None, "gw1")
    split = summarise(run, 100.0, ["chat", "management", "info"], BUDGETS, 60.0)
    assert split.workers == 2
    assert split.waiting == {"chat": 30.0, "management": 0.0, "info": 0.0}
    assert split.other == pytest.approx(200.0 - 30.0 - 5.0 - 40.0 - 10.0)
    assert split.requests == {"chat": 63, "management": 0, "info": 1}
    assert (split.floor_windows, split.floor) == (2, 120.0)  # ceil(63/60) - 1 = 1, plus the phase's
    assert split.line() == (
        "time: 100.0 s wall, parts summed over 2 workers; waiting for rate windows: chat 30.0 s, management 0.0 s, "
        "info 0.0 s; rate-limit phase 40.0 s (after 10.0 s waiting for the other tests); streaming 5.0 s; "
        "other 115.0 s; floor from the budget 120.0 s"
    )
    data = split.to_dict()
    assert data["floor"] == {"seconds": 120.0, "windows": 2, "window_seconds": 60.0, "budgets": BUDGETS}
    assert data["ratelimit_phase_ran"] is True and data["other_seconds"] == 115.0


def test_other_is_never_negative() -> None:
    run = RunTiming()
    run.add({"seconds": {STREAM: 5.0, "wait:chat": 5.0}, "requests": {}, "phase_runs": 0}, "main")
    split = summarise(run, 8.0, ["chat"], {"chat": 1}, 1.0)
    assert split.other == 0.0 and "rate-limit phase not run" in split.line()
