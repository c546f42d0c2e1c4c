"""Allure labels and attachments for conformance tests.

Through allure-pytest's public API (``allure.dynamic``, ``allure.attach``), so the
results are ordinary Allure results that ``allure generate`` renders:

* epic = the requirement's area, feature = its endpoint, story = its id, severity
  from its level (MUST critical, SHOULD normal, MAY minor), a tag per level;
* attachments: the requirements the test judges (with the quoted spec sentence),
  each request and each response of the test's exchange log, for streams the raw
  bytes and every event with its arrival time, and the curl reproduction.

Everything comes from the exchange log, which is redacted when it is recorded;
the reporter redacts the result files once more at the end of the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import allure
import pytest

from conformance.keys import LOG_KEY, declared_requirements
from conformance.oracle.sse import SSEChecker

if TYPE_CHECKING:
    from conformance.oracle.catalogue import Requirement
    from conformance.transport.redact import Redactor


class RequirementSource(Protocol):
    """What the labels need of the certification reporter (it is one)."""

    config: pytest.Config
    redactor: Redactor

    def requirement(self, rid: str) -> Requirement | None: ...

__all__ = ["SEVERITY", "AllureLabels", "exchange_attachments"]

SEVERITY = {
    "MUST": allure.severity_level.CRITICAL,
    "SHOULD": allure.severity_level.NORMAL,
    "MAY": allure.severity_level.MINOR,
}
_LEVEL_ORDER = ("MUST", "SHOULD", "MAY")
# allure-pytest's dynamic API carries no type hints.
_dynamic: Any = allure.dynamic


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


def _header_of(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def exchange_attachments(exchange: Any) -> list[tuple[str, str | bytes, Any]]:
    """``(name, body, attachment type)`` for one exchange of the log."""
    title = f"{exchange.index}. {exchange.method} {exchange.path}"
    request = "\n".join([f"{exchange.method} {exchange.url}", *(f"{n}: {v}" for n, v in exchange.request_headers)])
    if exchange.request_body is not None:
        request += "\n\n" + _text(exchange.request_body)
    out: list[tuple[str, str | bytes, Any]] = [(f"{title} — request", request, allure.attachment_type.TEXT)]
    if exchange.status is None:
        out.append((f"{title} — no answer", exchange.error or "no answer", allure.attachment_type.TEXT))
        return out
    head = "\n".join([f"HTTP {exchange.status} {exchange.reason or ''}".rstrip(), *(f"{n}: {v}" for n, v in exchange.response_headers)])
    notes = []
    if exchange.body_truncated:
        notes.append(f"(truncated; {exchange.total_bytes} bytes in all)")
    if exchange.error:
        notes.append(f"(error: {exchange.error})")
    if not exchange.stream:
        body = "\n\n".join([head, _text(exchange.response_body), *notes])
        out.append((f"{title} — response", body, allure.attachment_type.TEXT))
        return out
    out.append((f"{title} — response", "\n\n".join([head, "(an event stream: see the stream attachments)", *notes]), allure.attachment_type.TEXT))
    chunks = exchange.chunks
    out.append((f"{title} — stream, raw bytes", b"".join(c for _, c in chunks), allure.attachment_type.TEXT))
    out.append((f"{title} — stream, events with arrival times", json.dumps(_timeline(exchange, chunks), indent=2, ensure_ascii=False), allure.attachment_type.JSON))
    return out


def _timeline(exchange: Any, chunks: Sequence[tuple[float, bytes]]) -> dict[str, Any]:
    """Every event with the time (seconds since the request) of the chunk that
    completed it, and every chunk with its arrival time."""
    checker = SSEChecker(_header_of(exchange.response_headers, "content-type"))
    for t, chunk in chunks:
        checker.feed(chunk, t)
    checker.close(chunks[-1][0] if chunks else 0.0)
    return {
        "events": [{"arrived": round(e.arrived, 6), "event": e.type, "id": e.id, "data": e.data} for e in checker.events],
        "chunks": [{"arrived": round(t, 6), "bytes": _text(c)} for t, c in chunks],
    }


class AllureLabels:
    """Labels at setup, attachments at teardown (the log is complete by then)."""

    def __init__(self, reporter: RequirementSource) -> None:
        self.reporter = reporter

    @property
    def active(self) -> bool:
        return bool(getattr(self.reporter.config.option, "allure_report_dir", None))

    def _requirements(self, declared: Sequence[str]) -> list[Any]:
        return [req for rid in declared if (req := self.reporter.requirement(rid)) is not None]

    def label(self, item: pytest.Item, declared: Sequence[str]) -> None:
        reqs = self._requirements(declared)
        if not self.active or not reqs:
            return
        _dynamic.epic(*dict.fromkeys(r.area for r in reqs))
        _dynamic.feature(*dict.fromkeys(r.endpoint for r in reqs))
        _dynamic.story(*(r.id for r in reqs))
        levels = [lv for lv in _LEVEL_ORDER if any(r.level == lv for r in reqs)]
        _dynamic.severity(SEVERITY[levels[0]])
        _dynamic.tag(*levels)

    def attach(self, item: pytest.Item) -> None:
        if not self.active:
            return
        redact = self.reporter.redactor.redact
        reqs = self._requirements(declared_requirements(item))
        if reqs:
            text = "\n\n".join(f"{r.id} ({r.level}) {r.endpoint}\n{r.gloss}\nspec: {r.quote}" for r in reqs)
            allure.attach(text, name="requirements", attachment_type=allure.attachment_type.TEXT)
        log = item.stash.get(LOG_KEY, None)
        if log is None or not len(log):
            return
        for exchange in log:
            for name, body, kind in exchange_attachments(exchange):
                clean = self.reporter.redactor.redact_bytes(body) if isinstance(body, bytes) else redact(body)
                allure.attach(clean, name=name, attachment_type=kind)
        allure.attach(redact(log.to_curl_script()), name="Reproduce with (curl)", attachment_type=allure.attachment_type.TEXT)
