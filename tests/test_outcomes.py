"""The attribution API: every judgement names one requirement, MUST and SHOULD differ."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance.oracle.outcomes import (
    Checks,
    Outcome,
    Record,
    RequirementFailed,
    UndeclaredRequirement,
    summarise,
)


@dataclass(frozen=True)
class Req:
    level: str
    quote: str = "| bot_id | string | 是 |"
    gloss: str = "bot_id is required"


CATALOGUE = {"R-MUST": Req("MUST"), "R-SHOULD": Req("SHOULD"), "R-MAY": Req("MAY")}


def _checks(strict: bool = False, declared: tuple[str, ...] = ("R-MUST", "R-SHOULD", "R-MAY")) -> Checks:
    return Checks(declared, CATALOGUE, strict=strict, nodeid="t::x")


def test_a_held_condition_passes() -> None:
    checks = _checks()
    assert checks("R-MUST", True) is True
    assert [r.outcome for r in checks.records] == [Outcome.PASS]


def test_a_broken_must_raises_with_id_quote_expected_and_actual() -> None:
    checks = _checks()
    with pytest.raises(RequirementFailed) as excinfo:
        checks("R-MUST", False, expected=400, actual=200, detail="missing bot_id")
    text = str(excinfo.value)
    assert text.splitlines()[0] == "R-MUST (MUST) failed: bot_id is required"
    assert "spec: | bot_id | string | 是 |" in text
    assert "expected: 400" in text and "actual:   200" in text and "missing bot_id" in text
    assert checks.failures[0].outcome is Outcome.FAIL


def test_a_soft_must_records_without_raising() -> None:
    checks = _checks()
    assert checks("R-MUST", False, soft=True) is False
    assert [r.outcome for r in checks.records] == [Outcome.FAIL]


@pytest.mark.parametrize("req", ["R-SHOULD", "R-MAY"])
def test_a_broken_should_warns_and_fails_under_strict(req: str) -> None:
    lenient, strict = _checks(), _checks(strict=True)
    assert lenient(req, False) is False
    assert strict(req, False) is False  # recorded as FAIL, never raised: the test goes on
    assert lenient.records[0].outcome is Outcome.WARN
    assert strict.records[0].outcome is Outcome.FAIL


def test_an_undeclared_requirement_is_a_suite_bug() -> None:
    checks = _checks(declared=("R-MUST",))
    with pytest.raises(UndeclaredRequirement, match="checks R-SHOULD, which its @pytest.mark.requirement"):
        checks("R-SHOULD", True)
    with pytest.raises(UndeclaredRequirement):
        checks.skip("R-SHOULD", "no reason")


def test_skip_records_the_reason_and_does_not_count_as_judged() -> None:
    checks = _checks()
    checks.skip("R-MUST", "no second principal configured")
    assert checks.records[0].outcome is Outcome.SKIP and checks.records[0].detail.startswith("no second")
    assert checks.judged() == set()


def test_summary_worst_outcome_wins() -> None:
    records = [
        Record("A", "MUST", Outcome.PASS),
        Record("A", "MUST", Outcome.FAIL),
        Record("B", "SHOULD", Outcome.PASS),
        Record("B", "SHOULD", Outcome.WARN),
        Record("C", "MUST", Outcome.SKIP),
        Record("C", "MUST", Outcome.PASS),
        Record("D", "MUST", Outcome.SKIP),
    ]
    assert summarise(records) == {"A": Outcome.FAIL, "B": Outcome.WARN, "C": Outcome.PASS, "D": Outcome.SKIP}


def test_records_round_trip_as_plain_data() -> None:
    record = Record("A", "MUST", Outcome.FAIL, "1", "2", "d", "n")
    assert Record.from_dict(record.to_dict()) == record
    assert record.to_dict()["outcome"] == "FAIL"


def test_long_values_are_shortened() -> None:
    checks = _checks()
    checks("R-MUST", True, actual="x" * 10_000)
    assert checks.records[0].actual is not None and len(checks.records[0].actual) < 600
