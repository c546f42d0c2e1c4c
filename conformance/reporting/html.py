"""The certification summary in the HTML report.

pytest-html renders the whole report; these hooks only add to it, through its
documented extension points (``pytest_html_results_summary`` and the results-table
hooks): the verdict and what it was measured against at the top, with ``--compare-to``
what changed since the earlier run below it, a "Requirements"
column in the test table, and the per-requirement outcome table below the
filters. Every value is escaped here; pytest-html inserts these fragments as-is.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from conformance.reporting.compare import Comparison
    from conformance.reporting.verdict import Verdict
    from conformance.transport.redact import Redactor


class SummarySource(Protocol):
    """What the HTML summary needs of the certification reporter (it is one)."""

    verdict: Verdict | None
    redactor: Redactor
    comparison: Comparison | None  # with --compare-to

    def results_document(self) -> dict[str, Any]: ...

__all__ = ["HtmlSummary", "requirements_html", "summary_html"]

TITLE = "Coze Plus Agent API conformance"

_COLOURS = {
    "CONFORMANT": "#1a7f37",
    "NOT CONFORMANT": "#cf222e",
    "INCOMPLETE": "#9a6700",
    "INCONCLUSIVE": "#9a6700",
    "PASS": "#1a7f37",
    "FAIL": "#cf222e",
    "WARN": "#9a6700",
    "XFAIL": "#8250df",
    "SKIP": "#57606a",
    "NOT RUN": "#57606a",
}


_ORDER = ("FAIL", "XFAIL", "WARN", "NOT RUN", "SKIP", "PASS")


def _row(label: str, value: str) -> str:
    return f'<tr><th style="text-align:left;padding-right:1em">{escape(label)}</th><td>{escape(value)}</td></tr>'


def summary_html(facts: list[tuple[str, str]], verdict_line: str, status: str) -> str:
    """The verdict line and a table of ``(label, value)`` facts."""
    colour = _COLOURS.get(status, "inherit")
    rows = "".join(_row(label, value) for label, value in facts)
    return (
        '<div class="conformance-summary">'
        "<h2>Certification</h2>"
        f'<p class="conformance-verdict" style="font-size:1.25em;font-weight:bold;color:{colour}">{escape(verdict_line)}</p>'
        f'<table class="conformance-facts">{rows}</table>'
        "</div>"
    )


def requirements_html(rows: list[dict[str, Any]]) -> str:
    """The per-requirement outcome table (one dict per requirement: id, level,
    outcome, tests, gloss)."""
    counts = Counter(row["outcome"] for row in rows)
    caption = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    # What needs reading first comes first; the catalogue's order within each outcome.
    ordered = sorted(rows, key=lambda row: _ORDER.index(row["outcome"]) if row["outcome"] in _ORDER else len(_ORDER))
    cell = 'style="padding:1px 8px;vertical-align:top"'
    body = "".join(
        "<tr>"
        f"<td {cell}><code>{escape(row['id'])}</code></td>"
        f"<td {cell}>{escape(row['level'])}</td>"
        f'<td style="padding:1px 8px;vertical-align:top;font-weight:bold;color:{_COLOURS.get(row["outcome"], "inherit")}">{escape(row["outcome"])}</td>'
        f"<td {cell}>{len(row['tests'])}</td>"
        f"<td {cell}>{escape(row.get('gloss') or '')}</td>"
        "</tr>"
        for row in ordered
    )
    head = "".join(f'<th style="text-align:left;padding:1px 8px">{h}</th>' for h in ("Requirement", "Level", "Outcome", "Tests", "What is checked"))
    return (
        '<details class="conformance-requirements" open>'
        f"<summary><strong>Requirements ({len(rows)}): {escape(caption)}</strong></summary>"
        f'<table class="conformance-requirements-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        "</details>"
    )


class HtmlSummary:
    """pytest-html hooks, registered by the reporter when pytest-html is active."""

    def __init__(self, reporter: SummarySource) -> None:
        self.reporter = reporter

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        report.title = TITLE

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session) -> None:
        r = self.reporter
        if r.verdict is None:
            return
        document = r.results_document()
        suite = document["suite"]
        target = document["target"]
        baseline = document["baseline"]
        facts = [
            ("Target", f"{target['url']}" + (" (embedded reference server)" if target["embedded"] else "")),
            ("Profile", document["profile"] + (" (strict: SHOULD requirements fail)" if document["strict"] else "")),
            ("Suite", f"{suite['name']} {suite['version']}" + (f", commit {suite['commit']}" if suite["commit"] else "")
             + (" (with local changes)" if suite["dirty"] else "")),
            ("Catalogue sha256", document["catalogue_sha256"]),
            ("Spec sha256", document["spec_sha256"]),
            ("Baseline", "none" if baseline is None else f"{baseline['path']} ({len(baseline['entries'])} entries, sha256 {baseline['sha256']})"),
            ("Exit code", str(document["exit_code"])),
            ("Started", document["started_at"]),
        ]
        prefix.append(r.redactor.redact(summary_html(facts, r.verdict.line, str(r.verdict.status))))
        if r.comparison is not None:
            from conformance.reporting.compare import html_section

            prefix.append(r.redactor.redact(html_section(r.comparison)))
        postfix.append(r.redactor.redact(requirements_html(document["requirements"])))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, '<th class="sortable" data-column-type="requirements">Requirements</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        ids = dict.fromkeys(str(value) for name, value in getattr(report, "user_properties", []) if name == "requirement")
        cells.insert(2, f'<td class="col-requirements">{escape(", ".join(ids))}</td>')
