"""Per-check attribution: every verdict of the suite names one requirement.

A conformance test declares the requirements it judges with
``@pytest.mark.requirement("CHAT-001", ...)`` and judges them only through
``check(req_id, condition, expected=..., actual=..., detail=...)`` (the ``check``
fixture). Each call records an outcome for that requirement:

* PASS -- the condition held;
* FAIL -- a MUST requirement was broken (or a SHOULD one under ``--strict``);
* WARN -- a SHOULD (or MAY) requirement was broken; the test still passes;
* SKIP -- the requirement could not be judged here, with the reason.

Every per-requirement outcome in every report is computed from these records, never
from a test's pass/fail (the approach of h2spec and the MCP conformance suite: MUST
and SHOULD are different outcomes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"

    @property
    def rank(self) -> int:
        """Which outcome wins when one requirement was judged several times."""
        return _RANK[self]


_RANK = {Outcome.SKIP: 0, Outcome.PASS: 1, Outcome.WARN: 2, Outcome.FAIL: 3}


def _shown(value: Any, limit: int = 500) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclass(frozen=True)
class Record:
    """One judgement of one requirement, as reports carry it."""

    requirement: str
    level: str
    outcome: Outcome
    expected: str | None = None
    actual: str | None = None
    detail: str = ""
    nodeid: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        return cls(**{**data, "outcome": Outcome(data["outcome"])})


class RequirementFailed(AssertionError):
    """A MUST requirement was broken; the message says which, quotes the spec, and
    shows expected vs actual."""

    def __init__(self, record: Record, quote: str, gloss: str) -> None:
        self.record = record
        lines = [f"{record.requirement} ({record.level}) failed: {gloss}", f"  spec: {quote}"]
        if record.expected is not None:
            lines.append(f"  expected: {record.expected}")
        if record.actual is not None:
            lines.append(f"  actual:   {record.actual}")
        if record.detail:
            lines.append(f"  detail:   {record.detail}")
        super().__init__("\n".join(lines))


class UndeclaredRequirement(Exception):
    """A suite bug: a test judged a requirement its marker does not declare."""


class Checks:
    """The ``check`` fixture: records judgements for one test."""

    def __init__(
        self,
        declared: Iterable[str],
        catalogue: Mapping[str, Any],
        *,
        strict: bool,
        nodeid: str = "",
    ) -> None:
        self.declared = frozenset(declared)
        self.catalogue = catalogue
        self.strict = strict
        self.nodeid = nodeid
        self.records: list[Record] = []

    def _requirement(self, req_id: str) -> Any:
        if req_id not in self.declared:
            raise UndeclaredRequirement(
                f"{self.nodeid} checks {req_id}, which its @pytest.mark.requirement does not declare "
                f"(declared: {', '.join(sorted(self.declared)) or 'none'})"
            )
        return self.catalogue[req_id]

    def __call__(
        self,
        req_id: str,
        condition: object,
        *,
        expected: Any = None,
        actual: Any = None,
        detail: str = "",
        soft: bool = False,
    ) -> bool:
        """Judge ``req_id``. A broken MUST raises ``RequirementFailed`` unless ``soft``
        (then the test still fails at its end); a broken SHOULD warns (fails under
        ``--strict``, without stopping the test). Returns whether it held."""
        __tracebackhide__ = True
        req = self._requirement(req_id)
        held = bool(condition)
        if held:
            outcome = Outcome.PASS
        elif req.level == "MUST" or self.strict:
            outcome = Outcome.FAIL
        else:
            outcome = Outcome.WARN
        record = Record(req_id, req.level, outcome, _shown(expected), _shown(actual), detail, self.nodeid)
        self.records.append(record)
        if outcome is Outcome.FAIL and req.level == "MUST" and not soft:
            raise RequirementFailed(record, req.quote, req.gloss)
        return held

    def fail(self, req_id: str, *, expected: Any = None, actual: Any = None, detail: str = "") -> None:
        """Record a broken requirement outright (e.g. a transport error)."""
        __tracebackhide__ = True
        self(req_id, False, expected=expected, actual=actual, detail=detail)

    def skip(self, req_id: str, reason: str) -> None:
        """Record that ``req_id`` could not be judged here, and why."""
        req = self._requirement(req_id)
        self.records.append(Record(req_id, req.level, Outcome.SKIP, detail=reason, nodeid=self.nodeid))

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if r.outcome is Outcome.FAIL]

    @property
    def warnings(self) -> list[Record]:
        return [r for r in self.records if r.outcome is Outcome.WARN]

    def judged(self) -> set[str]:
        return {r.requirement for r in self.records if r.outcome is not Outcome.SKIP}


def summarise(records: Iterable[Record]) -> dict[str, Outcome]:
    """One outcome per requirement: FAIL beats WARN beats PASS beats SKIP."""
    result: dict[str, Outcome] = {}
    for record in records:
        current = result.get(record.requirement)
        if current is None or record.outcome.rank > current.rank:
            result[record.requirement] = record.outcome
    return result


def format_record(record: Record, quote: str = "", gloss: str = "") -> str:
    lines = [f"{record.outcome} {record.requirement} ({record.level})" + (f": {gloss}" if gloss else "")]
    if quote:
        lines.append(f"  spec: {quote}")
    for label, value in (("expected", record.expected), ("actual  ", record.actual), ("detail  ", record.detail)):
        if value:
            lines.append(f"  {label}: {value}")
    return "\n".join(lines)


def records_to_json(records: Iterable[Record]) -> str:
    return json.dumps([r.to_dict() for r in records], ensure_ascii=False)
