"""Secret redaction: every configured secret, in every form a report might carry it.

A secret reaches an artifact in more shapes than its raw text: a server echoes it
inside a JSON string (escaped, ``\\u``-escaped, or HTML-safe-escaped the way Go's
``encoding/json`` does), a URL carries it percent-encoded, an HTML report carries
it entity-escaped, pytest's ``--showlocals`` carries the Python ``repr`` of a str or
of bytes, and a JSON string embedded in another JSON string (``object_string``
content) carries it escaped twice. So each secret is expanded into every single
encoding below and every pair of them, and one regular expression replaces the
lot with a marker that names the secret (``***COZE_API_KEY***``), never its value.

Redaction everywhere: no API key or session key value, raw or
JSON-escaped, URL-encoded or HTML-escaped, in any artifact.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import AnyStr
from urllib.parse import quote, quote_plus

__all__ = ["DEFAULT_LABEL", "Redactor", "marker"]

#: Label of a secret given without one (``Redactor(["value"])``).
DEFAULT_LABEL = "SECRET"

#: A cut-off tail shorter than this is not treated as a partial secret: four
#: characters of a long key identify nothing, and fewer would redact ordinary text.
MIN_PARTIAL = 4


def marker(label: str, *, partial: bool = False) -> str:
    """The text that stands in for the secret called ``label``."""
    return f"***{label}{' (partial)' if partial else ''}***"


def _utf8(s: str) -> bytes:
    # surrogateescape: a secret read from a non-UTF-8 environment still encodes.
    return s.encode("utf-8", "surrogateescape")


def _json(s: str) -> str:
    return json.dumps(s)[1:-1]


def _json_utf8(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


def _json_upper_hex(s: str) -> str:
    # Some encoders (Jackson, some JS) write \u00E9 where Python writes \u00e9.
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), _json(s))


def _json_go(s: str) -> str:
    # Go's encoding/json (Coze Plus is a Go server) escapes <, >, & and the line
    # separators by default so the JSON is safe to embed in HTML.
    out = _json_utf8(s)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        out = out.replace(ch, esc)
    return out


def _json_slash(s: str) -> str:
    # PHP and some others escape the solidus.
    return _json_utf8(s).replace("/", "\\/")


def _url_all(s: str) -> str:
    return quote(s, safe="")


def _url_default(s: str) -> str:
    return quote(s)


def _url_js(s: str) -> str:
    # JavaScript's encodeURIComponent leaves these unescaped.
    return quote(s, safe="!'()*~")


def _url_lower_hex(s: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(s, safe=""))


def _html(s: str) -> str:
    return html.escape(s, quote=True)


def _html_noquote(s: str) -> str:
    return html.escape(s, quote=False)


def _html_numeric(s: str) -> str:
    # Go's html.EscapeString and many template engines use numeric references.
    return html.escape(s, quote=False).replace('"', "&#34;").replace("'", "&#39;")


def _py_repr(s: str) -> str:
    return repr(s)[1:-1]


def _py_bytes_repr(s: str) -> str:
    return repr(_utf8(s))[2:-1]


#: Every single encoding; the redactor also applies every ordered pair of them.
ENCODINGS: tuple[Callable[[str], str], ...] = (
    _json,
    _json_utf8,
    _json_upper_hex,
    _json_go,
    _json_slash,
    _url_all,
    _url_default,
    quote_plus,
    _url_js,
    _url_lower_hex,
    _html,
    _html_noquote,
    _html_numeric,
    _py_repr,
    _py_bytes_repr,
)


def variants(secret: str) -> set[str]:
    """The secret in every encoding and every pair of encodings (never empty)."""
    if not secret:
        return set()
    once = {secret} | set(_apply_all(secret))
    twice = {w for v in once for w in _apply_all(v)}
    return {v for v in once | twice if v}


def _apply_all(s: str) -> Iterator[str]:
    for enc in ENCODINGS:
        try:
            yield enc(s)
        except UnicodeError:
            continue  # a lone surrogate (non-UTF-8 environment) has no such form


def _pairs(secrets: Mapping[str, str | None] | Iterable[str | tuple[str, str | None] | None]) -> Iterator[tuple[str, str]]:
    if isinstance(secrets, Mapping):
        items: Iterable[object] = secrets.items()
    else:
        items = secrets
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            label, value = DEFAULT_LABEL, item
        else:
            label, value = item  # type: ignore[misc]
        if not isinstance(label, str) or not label:
            raise ValueError(f"a secret's label must be a non-empty string, got {label!r}")
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise TypeError(f"secret {label} must be a str, got {type(value).__name__}")
        yield label, value


def _partial_tail(out: AnyStr, patterns: Iterable[AnyStr], label_of: Mapping[AnyStr, str]) -> tuple[int, str]:
    """Length and label of the longest tail of ``out`` that is a proper prefix
    (at least MIN_PARTIAL long) of a pattern: a body or stream cut at a size cap
    or a deadline can end inside a secret, and what arrived is most of it."""
    best_k, best_label = 0, ""
    for pattern in patterns:
        for k in range(min(len(pattern) - 1, len(out)), max(MIN_PARTIAL, best_k + 1) - 1, -1):
            if out.endswith(pattern[:k]):
                best_k, best_label = k, label_of[pattern]
                break
    return best_k, best_label


class Redactor:
    """Replaces every configured secret, in every encoding, by a labelled marker.

    ``Redactor({"COZE_API_KEY": key, "COZE_SESSION_KEY": session})``, or pairs, or
    plain strings (labelled ``SECRET``). Empty and ``None`` secrets are skipped;
    short ones are still redacted (a pattern is never empty). When two secrets
    overlap, the longer match wins; when one value is given twice, the first
    label wins.
    """

    def __init__(self, secrets: Mapping[str, str | None] | Iterable[str | tuple[str, str | None] | None] = ()) -> None:
        self._secrets: dict[str, str] = {}
        for label, value in _pairs(secrets):
            self._secrets.setdefault(value, label)
        label_of: dict[str, str] = {}
        for value, label in self._secrets.items():
            for v in variants(value):
                label_of.setdefault(v, label)
        # Longest first: at one position the regex takes the first alternative
        # that matches, so a longer encoding is never cut short by a shorter one.
        ordered = sorted(label_of, key=lambda v: (-len(v), v))
        self._text_label = label_of
        self._bytes_label = {_utf8(v): label for v, label in label_of.items()}
        self._text_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes_re = re.compile(b"|".join(re.escape(_utf8(v)) for v in ordered)) if ordered else None
        self._ordered = ordered

    @property
    def labels(self) -> list[str]:
        """The labels of the configured secrets (never their values)."""
        return list(dict.fromkeys(self._secrets.values()))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor(labels={self.labels!r})"

    def merged(self, other: Redactor | None) -> Redactor:
        """A redactor for the secrets of both (this one's labels win on a tie)."""
        if other is None:
            return self
        pairs = [(label, value) for value, label in self._secrets.items()]
        pairs += [(label, value) for value, label in other._secrets.items()]
        return Redactor(pairs)

    def redact(self, text: str, *, truncated: bool = False) -> str:
        """``text`` with every secret replaced. ``truncated=True`` says the text was
        cut off, so a tail that is the start of a secret is replaced too."""
        if self._text_re is None:
            return text
        out = self._text_re.sub(lambda m: marker(self._text_label[m.group(0)]), text)
        if truncated:
            k, label = _partial_tail(out, self._ordered, self._text_label)
            if k:
                out = out[: len(out) - k] + marker(label, partial=True)
        return out

    def redact_bytes(self, data: bytes, *, truncated: bool = False) -> bytes:
        """``data`` with every secret's UTF-8 form replaced (see :meth:`redact`)."""
        return self.redact_chunks([data], truncated=truncated)[0]

    def redact_chunks(self, chunks: Sequence[bytes], *, truncated: bool = False) -> list[bytes]:
        """Redact a stream received in ``chunks`` as one text -- a secret split
        across chunks is still found -- and split the result at the same places.

        A replaced secret goes whole to the chunk where it began; so a chunk can
        come back empty, and the list always has one entry per chunk (the
        per-chunk arrival times of a stream stay aligned).
        """
        if self._bytes_re is None or not chunks:
            return list(chunks)
        data = b"".join(chunks)
        ends = list(accumulate(len(c) for c in chunks))
        out = bytearray()
        mapped: list[int] = []  # each chunk's end, as an offset into ``out``
        pos = i = 0
        for m in self._bytes_re.finditer(data):
            start, stop = m.span()
            while i < len(ends) and ends[i] <= start:
                mapped.append(len(out) + ends[i] - pos)
                i += 1
            out += data[pos:start]
            out += marker(self._bytes_label[m.group(0)]).encode()
            while i < len(ends) and ends[i] < stop:
                mapped.append(len(out))
                i += 1
            pos = stop
        while i < len(ends):
            mapped.append(len(out) + ends[i] - pos)
            i += 1
        out += data[pos:]
        if truncated:
            patterns = [_utf8(v) for v in self._ordered]
            k, label = _partial_tail(bytes(out), patterns, self._bytes_label)
            if k:
                keep = len(out) - k
                del out[keep:]
                out += marker(label, partial=True).encode()
                mapped = [min(x, keep) for x in mapped]
                mapped[-1] = len(out)
        starts = [0, *mapped[:-1]]
        return [bytes(out[a:b]) for a, b in zip(starts, mapped, strict=True)]

    def contains_secret(self, text: str | bytes) -> bool:
        """Whether ``text`` carries any configured secret in any known encoding."""
        if isinstance(text, bytes):
            return self._bytes_re is not None and self._bytes_re.search(text) is not None
        return self._text_re is not None and self._text_re.search(text) is not None
