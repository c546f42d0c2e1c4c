"""State shared across xdist workers: made once, counted exactly, never half-written."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from conformance.run.shared_state import SharedState


def _claim(folder: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    state = SharedState(Path(folder))
    queue.put(state.get_or_create("bot", lambda: f"made-by-{multiprocessing.current_process().pid}"))
    try:
        queue.put(state.increment("bots", limit=5))
    except ValueError:
        queue.put("refused")


@pytest.mark.slow
def test_value_made_once_and_counter_exact_across_processes(tmp_path: Path) -> None:
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_claim, args=(str(tmp_path), queue)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    results = [queue.get(timeout=5) for _ in range(16)]
    made = {r for r in results if isinstance(r, str) and r.startswith("made-by-")}
    counts = sorted(r for r in results if isinstance(r, int))
    assert len(made) == 1
    assert counts == [1, 2, 3, 4, 5]
    assert results.count("refused") == 3


def test_a_failing_factory_stores_nothing(tmp_path: Path) -> None:
    state = SharedState(tmp_path)

    def boom() -> str:
        raise RuntimeError("transport hiccup")

    with pytest.raises(RuntimeError):
        state.get_or_create("bot", boom)
    assert state.get("bot") is None
    assert state.get_or_create("bot", lambda: "second try") == "second try"
