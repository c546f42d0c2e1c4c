"""Regressions between two runs: what changed, requirement by requirement, from one
results.json to another (``coze-conformance compare OLD NEW``, and ``--compare-to OLD``
in a run, which puts the same comparison in the terminal, the HTML report and the new
results.json).

What counts as worse (docs/reports.md, "Comparing two runs"):

* among judged outcomes, FAIL (and XFAIL, a FAIL the baseline excused) is worse than
  WARN, which is worse than PASS: a step up is a **regression**, a step down a **fix**
  (to PASS) or an **improvement** (FAIL to WARN);
* a requirement judged in OLD that NEW did not judge (SKIP, NOT RUN) **lost coverage**:
  what it checked is no longer known to hold, so it counts as a regression too;
* FAIL and XFAIL are the same server behaviour (only the baseline differs), as are
  SKIP and NOT RUN (neither judged anything): a move between them is only a change;
* a requirement in only one of the two lists is not in the other run's catalogue
  (another suite version, or another profile): listed, never counted;
* the verdict itself is worse when it moves down the order of docs/reports.md:
  NOT CONFORMANT (a failure outside the baseline), INCONCLUSIVE, INCOMPLETE,
  NOT CONFORMANT (every failure baselined), CONFORMANT.

This module reads plain data and imports nothing of the suite, so it reads a
results.json of any suite version that wrote ``format_version`` 1 or 2.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from html import escape
from pathlib import Path
from typing import Any

__all__ = [
    "READABLE_VERSIONS",
    "REGRESSION_KINDS",
    "Change",
    "Comparison",
    "Kind",
    "ResultsError",
    "compare",
    "different_profiles",
    "format_markdown",
    "format_text",
    "html_section",
    "load_results",
    "render",
]

#: results.json formats this module reads (1: before the ``comparison`` key).
READABLE_VERSIONS = (1, 2)

OUTCOMES = ("PASS", "FAIL", "WARN", "SKIP", "XFAIL", "NOT RUN")
STATUSES = ("CONFORMANT", "INCOMPLETE", "INCONCLUSIVE", "NOT CONFORMANT")

# Worse is higher. FAIL and XFAIL rank alike: the baseline changes the exit code, not
# what the server did. SKIP and NOT RUN are not ranked: nothing was judged.
_RANK = {"PASS": 0, "WARN": 1, "XFAIL": 2, "FAIL": 2}


class Kind(StrEnum):
    REGRESSED = "regressed"
    COVERAGE_LOST = "coverage lost"
    FIXED = "fixed"
    IMPROVED = "improved"
    NEWLY_JUDGED = "newly judged"
    CHANGED = "changed"
    ONLY_OLD = "only in old"
    ONLY_NEW = "only in new"


#: The kinds that make ``compare`` exit 1.
REGRESSION_KINDS = frozenset({Kind.REGRESSED, Kind.COVERAGE_LOST})

#: Each kind's heading and what it means, in the order the reports list them.
_EXPLAINED: dict[Kind, tuple[str, str]] = {
    Kind.REGRESSED: ("Regressed", "worse than before (PASS < WARN < FAIL): a regression"),
    Kind.COVERAGE_LOST: (
        "Coverage lost",
        "judged in OLD, not judged in NEW (SKIP or NOT RUN): a regression, since what it checked is no longer known to hold",
    ),
    Kind.FIXED: ("Fixed", "PASS now, worse before"),
    Kind.IMPROVED: ("Improved", "better than before, not yet PASS"),
    Kind.NEWLY_JUDGED: ("Newly judged", "not judged in OLD (SKIP or NOT RUN), judged in NEW: nothing to compare with"),
    Kind.CHANGED: ("Changed", "neither better nor worse: between FAIL and XFAIL (the baseline), or between SKIP and NOT RUN"),
    Kind.ONLY_OLD: ("Only in OLD", "not in NEW's requirement list (another catalogue or profile): not counted"),
    Kind.ONLY_NEW: ("Only in NEW", "not in OLD's requirement list (another catalogue or profile): not counted"),
}


class ResultsError(ValueError):
    """A file that is not a readable results.json; ``problem`` says why in one line."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# --------------------------------------------------------------------------- reading


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json, checked for what a comparison reads; ResultsError otherwise."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ResultsError(name, f"cannot read it: {exc.strerror or exc}") from None
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ResultsError(name, "not UTF-8 text, so not a results.json") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(name, f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    problem = _problem(document)
    if problem:
        raise ResultsError(name, problem)
    return dict(document)


def _problem(document: Any) -> str | None:
    """Why ``document`` is not a results.json this module can compare, or None."""
    if not isinstance(document, dict):
        return f"not a results.json: the top level is {_json_type(document)}, not an object"
    if "format_version" not in document:
        return "not a results.json of coze-plus-conformance: no format_version"
    version = document["format_version"]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        return f"format_version {version!r} is not one this suite reads ({' or '.join(map(str, READABLE_VERSIONS))})"
    checks: list[tuple[str, Any, type | tuple[type, ...]]] = [
        ("suite", document.get("suite"), dict),
        ("profile", document.get("profile"), str),
        ("target", document.get("target"), dict),
        ("verdict", document.get("verdict"), dict),
        ("requirements", document.get("requirements"), list),
    ]
    for where, value, kind in checks:
        if not isinstance(value, kind):
            return _wrong(where, value, kind)
    if not isinstance(document["suite"].get("version"), str):
        return _wrong("suite.version", document["suite"].get("version"), str)
    if not isinstance(document["target"].get("url"), (str, type(None))):
        return _wrong("target.url", document["target"].get("url"), str)
    status = document["verdict"].get("status")
    if status not in STATUSES:
        return f"verdict.status: {status!r} is not one of {', '.join(STATUSES)}"
    seen: set[str] = set()
    for index, entry in enumerate(document["requirements"]):
        where = f"requirements[{index}]"
        if not isinstance(entry, dict):
            return _wrong(where, entry, dict)
        rid, outcome = entry.get("id"), entry.get("outcome")
        if not isinstance(rid, str):
            return _wrong(f"{where}.id", rid, str)
        if not rid:
            return f"{where}.id: empty"
        if outcome not in OUTCOMES:
            return f"{where}.outcome ({rid}): {outcome!r} is not one of {', '.join(OUTCOMES)}"
        if rid in seen:
            return f"{where}: {rid} is listed twice"
        seen.add(rid)
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _wrong(where: str, value: Any, kind: type | tuple[type, ...]) -> str:
    wanted = _json_type(kind[0]() if isinstance(kind, tuple) else kind())
    return f"{where}: expected {wanted}, found {'nothing' if value is None else _json_type(value)}"


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Change:
    """One requirement whose outcome differs; None is "not in that run's list"."""

    id: str
    level: str
    old: str | None
    new: str | None
    kind: Kind

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "level": self.level, "old": self.old, "new": self.new, "kind": str(self.kind)}


@dataclass(frozen=True)
class Comparison:
    """OLD against NEW: the facts of both runs, every change, and whether anything got worse."""

    old: Mapping[str, Any]
    new: Mapping[str, Any]
    changes: tuple[Change, ...]
    unchanged: int
    verdict_change: str  # "worse", "better" or "same"
    notes: tuple[str, ...] = field(default=())

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind in REGRESSION_KINDS)

    @property
    def regressed(self) -> bool:
        return bool(self.regressions) or self.verdict_change == "worse"

    def of_kind(self, kind: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind is kind]

    @property
    def line(self) -> str:
        """``REGRESSED — 1 requirement regressed (BOT-CREATE-006); 2 fixed``: the last line of the text."""
        counts = Counter(c.kind for c in self.changes)
        parts = []
        for kind in Kind:
            ids = [c.id for c in self.of_kind(kind)]
            if ids:
                shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
                noun = "requirement" if counts[kind] == 1 else "requirements"
                parts.append(f"{counts[kind]} {noun} {kind} ({shown})")
        if self.verdict_change != "same":
            parts.append(f"verdict {self.verdict_change} ({self.old['verdict']['status']} -> {self.new['verdict']['status']})")
        if not parts:
            parts.append(f"no requirement changed ({self.unchanged} the same)")
        return f"{'REGRESSED' if self.regressed else 'NO REGRESSION'} — " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        counts = Counter(str(c.kind) for c in self.changes)
        return {
            "old": dict(self.old),
            "new": dict(self.new),
            "regressed": self.regressed,
            "line": self.line,
            "verdict_change": self.verdict_change,
            "notes": list(self.notes),
            "counts": {str(kind): counts[str(kind)] for kind in Kind},
            "unchanged": self.unchanged,
            "changes": [c.to_dict() for c in self.changes],
        }


def _facts(document: Mapping[str, Any], path: str | None) -> dict[str, Any]:
    suite, target, verdict = document["suite"], document["target"], document["verdict"]
    return {
        "path": path,
        "suite_version": suite["version"],
        "suite_commit": suite.get("commit"),
        "catalogue_sha256": document.get("catalogue_sha256"),
        "profile": document["profile"],
        "strict": document.get("strict"),
        "target": target.get("url"),
        "embedded": target.get("embedded"),
        "verdict": {"status": verdict["status"], "line": verdict.get("line") or verdict["status"]},
        "exit_code": document.get("exit_code"),
        "started_at": document.get("started_at"),
    }


def _severity(verdict: Mapping[str, Any]) -> int:
    """The verdict's place in the order of docs/reports.md; higher is worse."""
    status = verdict["status"]
    if status == "NOT CONFORMANT":
        return 4 if verdict.get("failing") or verdict.get("failing_other") else 1
    return {"CONFORMANT": 0, "INCOMPLETE": 2, "INCONCLUSIVE": 3}[status]


def _kind(old: str | None, new: str | None) -> Kind | None:
    if old is None:
        return Kind.ONLY_NEW
    if new is None:
        return Kind.ONLY_OLD
    if old == new:
        return None
    if old in _RANK and new in _RANK:
        if _RANK[new] > _RANK[old]:
            return Kind.REGRESSED
        if _RANK[new] < _RANK[old]:
            return Kind.FIXED if new == "PASS" else Kind.IMPROVED
        return Kind.CHANGED
    if old in _RANK:
        return Kind.COVERAGE_LOST
    if new in _RANK:
        return Kind.NEWLY_JUDGED
    return Kind.CHANGED


def different_profiles(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why two runs of different profiles are not comparable as they stand, or None."""
    if old["profile"] == new["profile"]:
        return None
    return (
        f"the runs are of different profiles ({old['profile']} and {new['profile']}): a profile decides which "
        "requirements exist and how the wire is read, so a change between them may be the profile's, not the server's"
    )


def compare(
    old: Mapping[str, Any], new: Mapping[str, Any], *, old_path: str | None = None, new_path: str | None = None
) -> Comparison:
    """Compare two results.json documents (as :func:`load_results` returns them)."""
    before = {r["id"]: r for r in old["requirements"]}
    after = {r["id"]: r for r in new["requirements"]}
    changes = []
    unchanged = 0
    # NEW's order (the catalogue's), then what only OLD lists.
    for rid in dict.fromkeys([*after, *before]):
        o, n = before.get(rid), after.get(rid)
        kind = _kind(o["outcome"] if o else None, n["outcome"] if n else None)
        if kind is None:
            unchanged += 1
            continue
        level = str((n or o or {}).get("level") or "")
        changes.append(Change(rid, level, o["outcome"] if o else None, n["outcome"] if n else None, kind))
    step = _severity(new["verdict"]) - _severity(old["verdict"])
    verdict_change = "worse" if step > 0 else "better" if step < 0 else "same"
    old_facts, new_facts = _facts(old, old_path), _facts(new, new_path)
    return Comparison(old_facts, new_facts, tuple(changes), unchanged, verdict_change, tuple(_notes(old_facts, new_facts)))


def _notes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between the two runs besides the server's answers."""
    notes = []
    if (why := different_profiles(old, new)) is not None:
        notes.append(why)
    if (old["suite_version"], old["suite_commit"]) != (new["suite_version"], new["suite_commit"]) or (
        old["catalogue_sha256"] != new["catalogue_sha256"]
    ):
        notes.append(
            "the suites differ (version, commit or catalogue): a change may come from the suite's checks, not the server"
        )
    if old["target"] != new["target"]:
        notes.append(f"the targets differ ({old['target']} and {new['target']})")
    if old["strict"] != new["strict"]:
        notes.append("one run was --strict and the other not: a SHOULD requirement FAILs under --strict and only WARNs without")
    return notes


# --------------------------------------------------------------------------- writing


def _run_summary(facts: Mapping[str, Any]) -> str:
    """``old/results.json: suite 0.1.0 (commit ffc73790ff68), profile doc, target http://…``"""
    commit = f" (commit {str(facts['suite_commit'])[:12]})" if facts["suite_commit"] else ""
    target = f"{facts['target']}" + (" (embedded reference server)" if facts["embedded"] else "")
    where = f"{facts['path']}: " if facts["path"] else ""
    return f"{where}suite {facts['suite_version']}{commit}, profile {facts['profile']}, target {target}"


def _outcome(value: str | None) -> str:
    return "(absent)" if value is None else value


def format_text(comparison: Comparison) -> str:
    """The comparison as plain text (the CLI's default and the terminal summary)."""
    c = comparison
    lines = [f"{label} {_run_summary(facts)}\n    {facts['verdict']['line']}" for label, facts in (("OLD", c.old), ("NEW", c.new))]
    lines.append(f"verdict: {c.old['verdict']['status']} -> {c.new['verdict']['status']} ({c.verdict_change})")
    lines += [f"note: {note}" for note in c.notes]
    for kind, (title, meaning) in _EXPLAINED.items():
        rows = c.of_kind(kind)
        if not rows:
            continue
        lines.append(f"{title} ({len(rows)}): {meaning}")
        width = max(len(r.id) for r in rows)
        lines += [f"  {r.id:<{width}}  {r.level:<6}  {_outcome(r.old)} -> {_outcome(r.new)}" for r in rows]
    lines.append(c.line)
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown (a pull request comment, a job summary)."""
    c = comparison
    lines = ["## Conformance: OLD against NEW", "", "| | OLD | NEW |", "|---|---|---|"]
    for label, key in (("File", "path"), ("Suite", "suite_version"), ("Commit", "suite_commit"), ("Profile", "profile"),
                       ("Target", "target"), ("Verdict", "verdict")):
        values = [c.old[key], c.new[key]]
        if key == "verdict":
            values = [v["line"] for v in values]
        lines.append(f"| {label} | " + " | ".join(_md(str(v)) if v is not None else "" for v in values) + " |")
    lines += ["", f"**{_md(c.line)}**", ""]
    lines += [f"> note: {_md(note)}" for note in c.notes]
    for kind, (title, meaning) in _EXPLAINED.items():
        rows = c.of_kind(kind)
        if not rows:
            continue
        lines += ["", f"### {title} ({len(rows)})", "", _md(meaning), "", "| requirement | level | OLD | NEW |", "|---|---|---|---|"]
        lines += [f"| `{r.id}` | {r.level} | {_outcome(r.old)} | {_outcome(r.new)} |" for r in rows]
    return "\n".join(lines)


_COLOURS = {Kind.REGRESSED: "#cf222e", Kind.COVERAGE_LOST: "#cf222e", Kind.FIXED: "#1a7f37", Kind.IMPROVED: "#1a7f37"}


def html_section(comparison: Comparison) -> str:
    """The comparison for the HTML report (every value escaped: pytest-html inserts it as-is)."""
    c = comparison
    colour = "#cf222e" if c.regressed else "#1a7f37"
    cell = 'style="padding:1px 8px;vertical-align:top"'
    runs = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{label}</th><td>{escape(_run_summary(facts))}'
        f"<br>{escape(facts['verdict']['line'])}</td></tr>"
        for label, facts in (("OLD", c.old), ("NEW", c.new))
    )
    notes = "".join(f"<li>{escape(note)}</li>" for note in c.notes)
    tables = []
    for kind, (title, meaning) in _EXPLAINED.items():
        rows = c.of_kind(kind)
        if not rows:
            continue
        body = "".join(
            f'<tr><td {cell}><code>{escape(r.id)}</code></td><td {cell}>{escape(r.level)}</td>'
            f"<td {cell}>{escape(_outcome(r.old))}</td><td {cell}>{escape(_outcome(r.new))}</td></tr>"
            for r in rows
        )
        tables.append(
            f'<h4 style="color:{_COLOURS.get(kind, "inherit")}">{escape(title)} ({len(rows)})</h4><p>{escape(meaning)}</p>'
            f'<table class="conformance-comparison-{kind.name.lower()}"><thead><tr>'
            + "".join(f'<th style="text-align:left;padding:1px 8px">{h}</th>' for h in ("Requirement", "Level", "OLD", "NEW"))
            + f"</tr></thead><tbody>{body}</tbody></table>"
        )
    return (
        '<div class="conformance-comparison">'
        "<h2>Compared to an earlier run</h2>"
        f'<p class="conformance-comparison-line" style="font-weight:bold;color:{colour}">{escape(c.line)}</p>'
        f"<table>{runs}</table>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + "".join(tables)
        + "</div>"
    )


def render(comparison: Comparison, form: str) -> str:
    """``text``, ``markdown`` or ``json``."""
    if form == "json":
        return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False)
    if form == "markdown":
        return format_markdown(comparison)
    return format_text(comparison)

