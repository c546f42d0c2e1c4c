"""The redactor: every secret, in every encoding a report might carry it, is replaced
by a marker naming it."""

from __future__ import annotations

import html
import json
import pickle
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.transport.redact import Redactor, marker

#: Secrets built to break naive redaction: JSON, URL and HTML metacharacters,
#: a backslash, and non-ASCII text.
NASTY = [
    pytest.param('ab"cd/ef+gh=ij%kl', id="quote-slash-plus-equals-percent"),
    pytest.param("pat_AbC+/==", id="base64-tail"),
    pytest.param("s%2Fk%25z", id="already-percent-encoded"),
    pytest.param("back\\slash<&>'q", id="backslash-html"),
    pytest.param("clé-秘密-ключ", id="non-ascii"),
    pytest.param("tab\tand\u2028sep", id="control-and-line-separator"),
]


def encodings(secret: str) -> dict[str, str]:
    """The forms the issue names, computed here independently of the module."""
    j = json.dumps(secret)[1:-1]
    return {
        "raw": secret,
        "json": j,
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "url-all": quote(secret, safe=""),
        "url-plus": quote_plus(secret),
        "url-default": quote(secret),
        "html": html.escape(secret, quote=True),
        "html-noquote": html.escape(secret, quote=False),
        "html-of-json": html.escape(j, quote=True),
        "json-of-json": json.dumps(j)[1:-1],
        "url-of-json": quote(j, safe=""),
        "json-of-html": json.dumps(html.escape(secret))[1:-1],
        "go-json": json.dumps(secret, ensure_ascii=False)[1:-1]
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026"),
        "py-repr": repr(secret)[1:-1],
        "py-bytes-repr": repr(secret.encode())[2:-1],
    }


@pytest.mark.parametrize("secret", NASTY)
def test_every_encoding_is_replaced_by_its_label(secret: str) -> None:
    r = Redactor({"COZE_API_KEY": secret})
    for form, text in encodings(secret).items():
        framed = f"before [{text}] after"
        out = r.redact(framed)
        assert out == "before [***COZE_API_KEY***] after", form
        assert r.redact_bytes(framed.encode()) == out.encode(), form


@pytest.mark.parametrize("secret", NASTY)
def test_secret_inside_a_json_document_and_an_html_report(secret: str) -> None:
    r = Redactor({"COZE_SESSION_KEY": secret})
    doc = json.dumps({"echo": secret, "nested": json.dumps({"k": secret})})
    page = f"<pre>{html.escape(doc)}</pre>"
    for text in (doc, page):
        out = r.redact(text)
        assert "***COZE_SESSION_KEY***" in out
        for form, enc in encodings(secret).items():
            assert enc not in out, form


def test_labels_name_the_secret_and_never_show_values() -> None:
    r = Redactor({"COZE_API_KEY": "key-one-value", "COZE_SESSION_KEY": "session-two-value"})
    assert r.redact("a key-one-value b session-two-value") == "a ***COZE_API_KEY*** b ***COZE_SESSION_KEY***"
    assert r.labels == ["COZE_API_KEY", "COZE_SESSION_KEY"]
    assert "value" not in repr(r)


@pytest.mark.parametrize(
    "given, expected",
    [
        pytest.param({"A": "alpha-secret"}, "***A***", id="mapping"),
        pytest.param([("A", "alpha-secret")], "***A***", id="pairs"),
        pytest.param(["alpha-secret"], "***SECRET***", id="plain-strings"),
    ],
)
def test_accepted_shapes(given: object, expected: str) -> None:
    assert Redactor(given).redact("alpha-secret") == expected  # type: ignore[arg-type]


def test_empty_and_missing_secrets_are_skipped_short_ones_still_redacted() -> None:
    r = Redactor({"EMPTY": "", "NONE": None, "SHORT": "q7"})
    assert r.labels == ["SHORT"]
    assert r.redact("a q7 b") == "a ***SHORT*** b"
    # an empty pattern would match between every two characters
    assert Redactor({"EMPTY": ""}).redact("abc") == "abc"
    assert not Redactor({"EMPTY": ""})


def test_longer_secret_wins_when_one_contains_another() -> None:
    r = Redactor({"SHORT": "abcd", "LONG": "xxabcdyy"})
    assert r.redact("xxabcdyy abcd") == "***LONG*** ***SHORT***"


def test_a_replacement_is_never_rescanned() -> None:
    # The marker of one secret contains another secret's text.
    r = Redactor({"API": "I***"})
    assert r.redact("I***") == "***API***"


def test_secret_split_across_stream_chunks_is_found_and_chunks_stay_aligned() -> None:
    r = Redactor({"K": "sk-0123456789"})
    chunks = [b"data: sk-01", b"23", b"456789\n\n", b"next"]
    out = r.redact_chunks(chunks)
    assert len(out) == len(chunks)
    assert b"".join(out) == b"data: ***K***\n\nnext"
    assert out[0] == b"data: ***K***" and out[1] == b"" and out[3] == b"next"


def test_truncated_tail_that_starts_a_secret_is_redacted() -> None:
    r = Redactor({"K": "sk-0123456789abcdef"})
    assert r.redact("cut here: sk-0123456", truncated=True) == "cut here: ***K (partial)***"
    assert r.redact_bytes(b"cut: sk-01234", truncated=True) == b"cut: ***K (partial)***"
    # without truncation the same text is left alone (it is not the secret)
    assert r.redact("cut here: sk-0123456") == "cut here: sk-0123456"
    # a tail shorter than four characters is not a secret's start
    assert r.redact("ends sk-", truncated=True) == "ends sk-"


def test_merged_redactor_covers_both() -> None:
    r = Redactor({"A": "alpha-secret"}).merged(Redactor({"B": "beta-secret"}))
    assert r.redact("alpha-secret beta-secret") == "***A*** ***B***"
    assert r.contains_secret("x beta-secret") and not r.contains_secret("nothing")


def test_marker_shape() -> None:
    assert marker("COZE_API_KEY") == "***COZE_API_KEY***"
    assert marker("X", partial=True) == "***X (partial)***"


def test_redactor_survives_pickling() -> None:
    r = pickle.loads(pickle.dumps(Redactor({"A": "alpha-secret"})))
    assert r.redact("alpha-secret") == "***A***"


@settings(max_examples=60, deadline=None)
@given(
    secret=st.text(min_size=4, max_size=24).filter(lambda s: s.strip() == s and "*" not in s),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_property_no_encoding_survives(secret: str, before: str, after: str) -> None:
    r = Redactor({"S": secret})
    for form, enc in encodings(secret).items():
        out = r.redact(before + enc + after)
        assert enc not in out, form
        assert "***S***" in out, form
