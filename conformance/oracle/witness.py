"""Differential reading: the bytes of a stream the suite judged, read again by the
profile's real client parser, and every disagreement with the suite's own checker.

The checker (sse.py) is the suite's oracle; a real client is a second one, written by
other hands. Where they read a stream differently one of them is wrong, and a
certification should say so with the byte offset rather than trust either blindly.
Which client reads a profile's streams is profile data (``[stream] witness``):

* ``httpx-sse``: httpx-sse's ``EventSource`` (a WHATWG parser), for the documented dialect;
* ``cozepy``: the official Python SDK's ``Stream`` class with its chat handler, for the
  Coze cloud dialect. cozepy is not a WHATWG parser: it reads exactly one ``event:`` and
  one ``data:`` line per event and raises ``CozeInvalidEventError`` on any other line
  (the checker notes those as ``sse.sdk_framing``), and it reads an event whose blank
  line never came at the end of the body (the checker discards it:
  ``sse.unterminated_event``). Both differences are expected and not reported; any
  other is.

Own code, not a library: no library compares two parsers' readings of one byte stream.
cozepy's ``Stream`` is public; its chat handler ``_chat_stream_handler`` is not, so
``cozepy_internals()`` names what this module relies on and tests/test_witness_internals.py
fails loudly when a cozepy release changes it.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.oracle.sse import Event, Finding

__all__ = ["Disagreement", "WitnessReading", "cozepy_internals", "disagreements", "read_with"]

#: The cozepy versions whose internals this module was written against.
COZEPY_VERSIONS = ("0.20.",)


@dataclass(frozen=True)
class WitnessReading:
    """What a client parser made of a stream: its (event, data) pairs, in order; the
    error it stopped with (None when it read to the end); and, for cozepy, what its chat
    handler made of each event ("ok", "unknown", "error event", "done" or "invalid: ...")."""

    client: str
    events: list[tuple[str, str]]
    error: str | None = None
    handled: tuple[str, ...] = ()


@dataclass(frozen=True)
class Disagreement:
    """One place where the checker and the client read the stream differently."""

    offset: int | None
    message: str

    def __str__(self) -> str:
        where = f"at byte {self.offset}" if self.offset is not None else "at the end"
        return f"{where}: {self.message}"


def cozepy_internals() -> dict[str, Any]:
    """What this module uses of cozepy: ``Stream`` (public) and the chat handler and
    ``CozeInvalidEventError``; raises ImportError or AttributeError when they moved."""
    # cozepy imports authlib.jose, which warns that it is deprecated: cozepy's own
    # warning, nothing the suite or the target did. authlib installs an "always" filter
    # for its warnings when first imported, so it is imported before ours goes first.
    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"authlib\.jose module is deprecated", AuthlibDeprecationWarning)
        from cozepy.chat import _chat_stream_handler
        from cozepy.exception import CozeInvalidEventError
        from cozepy.model import Stream

    return {
        "version": importlib.metadata.version("cozepy"),
        "Stream": Stream,
        "handler": _chat_stream_handler,
        "CozeInvalidEventError": CozeInvalidEventError,
    }


def _response(body: bytes, content_type: str) -> Any:
    import httpx

    return httpx.Response(200, headers={"content-type": content_type}, content=body)


def _read_httpx_sse(body: bytes, content_type: str) -> WitnessReading:
    from httpx_sse import EventSource

    events = [(sse.event, sse.data) for sse in EventSource(_response(body, content_type)).iter_sse()]
    return WitnessReading("httpx-sse", events)


def _read_cozepy(body: bytes, content_type: str) -> WitnessReading:
    parts = cozepy_internals()
    response = _response(body, content_type)
    events: list[tuple[str, str]] = []
    handled: list[str] = []

    def record(fields: dict[str, str], raw: Any) -> None:
        events.append((fields["event"], fields["data"]))
        handled.append(_handle(parts["handler"], fields, raw))
        return None  # the Stream yields nothing and reads on to the end of the body

    stream = parts["Stream"](response, response.iter_lines(), ["event", "data"], record)
    try:
        for _ in stream:
            pass
    except parts["CozeInvalidEventError"] as exc:
        return WitnessReading("cozepy", events, f"CozeInvalidEventError: {exc}", tuple(handled))
    return WitnessReading("cozepy", events, None, tuple(handled))


def _handle(handler: Any, fields: dict[str, str], raw: Any) -> str:
    """What cozepy's chat handler makes of one event."""
    try:
        item = handler(fields, raw)
    except Exception as exc:  # the handler raises a bare Exception on `error`
        text = str(exc)
        return "error event" if text.startswith("error event") else f"invalid: {type(exc).__name__}: {text[:200]}"
    if item is None:
        return "done"
    event = getattr(item, "event", None)
    return "unknown" if getattr(event, "value", event) == "unknown" else "ok"


_READERS = {"httpx-sse": _read_httpx_sse, "cozepy": _read_cozepy}


def read_with(client: str, body: bytes, content_type: str = "text/event-stream") -> WitnessReading:
    """``body`` read by ``client`` ("httpx-sse" or "cozepy")."""
    try:
        reader = _READERS[client]
    except KeyError:
        raise ValueError(f"unknown witness client {client!r}; known: {', '.join(sorted(_READERS))}") from None
    return reader(body, content_type)


def disagreements(
    witness: WitnessReading,
    events: Sequence[Event],
    findings: Sequence[Finding],
    *,
    grammar_findings: Sequence[Finding] = (),
) -> list[Disagreement]:
    """Where ``witness`` read the stream otherwise than the checker's ``events`` and
    ``findings``. For cozepy, its framing refusals must match the checker's
    ``sse.sdk_framing`` notes, an event it read past an unterminated end must match
    ``sse.unterminated_event``, and an event its handler could not validate must match a
    grammar finding on that event (``grammar_findings``)."""
    ours = [(e.type, e.data) for e in events]
    theirs = list(witness.events)
    rules = {f.rule for f in findings}
    out: list[Disagreement] = []
    if witness.client == "cozepy":
        framing = [f for f in findings if f.rule == "sse.sdk_framing"]
        if witness.error is not None and not framing:
            offset = events[len(theirs)].offset if len(theirs) < len(events) else None
            out.append(Disagreement(offset, f"cozepy refused the stream ({witness.error}); the checker saw no framing problem"))
        if witness.error is None and framing:
            out.append(Disagreement(framing[0].offset, f"the checker noted {framing[0].message!r}; cozepy read on"))
        if witness.error is not None:
            ours = ours[: len(theirs)]  # cozepy stopped there; compare what both read
        elif len(theirs) == len(ours) + 1 and "sse.unterminated_event" in rules:
            theirs = theirs[:-1]  # cozepy reads the unterminated last event; WHATWG discards it
        invalid_events = {f.index for f in grammar_findings if f.index is not None}
        for index, outcome in enumerate(witness.handled):
            if outcome.startswith("invalid") and index not in invalid_events and index < len(events):
                out.append(
                    Disagreement(
                        events[index].offset,
                        f"cozepy's chat handler refused event {index} ({events[index].type}): {outcome}; "
                        "the grammar found nothing wrong with it",
                    )
                )
    for index, (mine, its) in enumerate(zip(ours, theirs, strict=False)):
        if mine != its:
            out.append(
                Disagreement(
                    events[index].offset,
                    f"event {index}: the checker read {_pair(mine)}, {witness.client} read {_pair(its)}",
                )
            )
            break
    else:
        if len(ours) != len(theirs):
            longer, n = ("the checker", len(ours)) if len(ours) > len(theirs) else (witness.client, len(theirs))
            shorter = min(len(ours), len(theirs))
            offset = events[shorter].offset if shorter < len(events) else None
            out.append(Disagreement(offset, f"{longer} read {n} events, the other {shorter}"))
    return out


def _pair(pair: tuple[str, str]) -> str:
    event, data = pair
    shown = data if len(data) <= 80 else data[:77] + "..."
    return f"{event!r} {shown!r}"
