"""Collection of the suite: every test declares known requirements of the run's profile."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.oracle.catalogue import load_catalogue
from conformance.plugin import collection_problems, in_profile

CATALOGUE = load_catalogue()
SOME = next(iter(CATALOGUE))


def test_a_sound_collection_has_no_problems() -> None:
    assert collection_problems({"t.py::a": (SOME,)}, CATALOGUE, "doc") == []


@pytest.mark.parametrize(
    ("ids", "problem"),
    [
        pytest.param((), "t.py::a: no @pytest.mark.requirement(...)", id="no-marker"),
        pytest.param(("NOPE-001",), "t.py::a: unknown requirement id 'NOPE-001'", id="unknown-id"),
    ],
)
def test_unsound_collections_are_named(ids: tuple[str, ...], problem: str) -> None:
    assert collection_problems({"t.py::a": ids}, CATALOGUE, "doc") == [problem]


def test_retired_and_foreign_requirements_are_refused() -> None:
    retired = {SOME: dataclasses.replace(CATALOGUE[SOME], retired=True)}
    assert collection_problems({"t.py::a": (SOME,)}, retired, "doc") == [f"t.py::a: requirement {SOME} is retired"]
    # An id of another profile is sound: the test simply does not run in this one.
    assert collection_problems({"t.py::a": (SOME,)}, CATALOGUE, "coze") == []
    assert in_profile((SOME, "COZE-SSE-001"), CATALOGUE, "coze") == ("COZE-SSE-001",)
    assert in_profile((SOME, "COZE-SSE-001"), CATALOGUE, "doc") == (SOME,)


@pytest.mark.slow
def test_the_shipped_suite_collects_soundly(pytester: pytest.Pytester) -> None:
    """The real suite through pytest: collection succeeds (exit 0), which it would not
    with one unsound test (the plugin raises a usage error, exit 4)."""
    from conformance.keys import SUITE_DIR

    result = pytester.runpytest_subprocess(str(SUITE_DIR), "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
