"""The suite's HTTP client against real local servers that misbehave: hard
deadlines, the size cap, no redirects, auth modes, redaction in the exchange log,
and the curl reproduction."""

from __future__ import annotations

import html
import json
import os
import pickle
import shutil
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from conformance.transport.client import (
    WRONG_API_KEY,
    WRONG_SESSION_KEY,
    ApiClient,
    DeadlineExceeded,
    MissingCredential,
    NotJson,
    Outage,
    Principal,
    ResponseTooLarge,
    TargetDown,
    TransportError,
)
from conformance.transport.exchange import (
    Exchange,
    ExchangeLog,
    redact_header,
    redact_url,
)
from conformance.transport.redact import Redactor
from tests.support.servers import (
    ScriptedServer,
    big_body,
    closed_port_url,
    echo,
    gzip_bomb,
    header_trickle,
    raw_answer,
    redirect,
    sse_comments_forever,
    sse_events,
    stall_after_headers,
    stall_before_headers,
    trickle,
)

#: Credentials with JSON, URL and HTML metacharacters (a session key cannot hold ';' or a space).
API_KEY = 'pat_k"e/y+1=%2F\\<&>'
SESSION_KEY = 's/e+s=s%"io<n>&'
API_KEY_2 = "pat_second+/=key%"
SESSION_KEY_2 = "sess_second/+=%"

DEADLINE = 1.5

#: A JSON body long enough that decoding takes more than one bounded piece.
PAYLOAD = json.dumps({"code": 0, "msg": "success", "data": {"text": "你好" * 100_000}}).encode()


def _deflate(data: bytes, wbits: int) -> bytes:
    encoder = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return encoder.compress(data) + encoder.flush()


ENCODED = {
    "gzip": ("gzip", _deflate(PAYLOAD, 31)),
    "x-gzip": ("x-gzip", _deflate(PAYLOAD, 31)),
    "deflate": ("deflate", _deflate(PAYLOAD, 15)),
    "raw-deflate": ("deflate", _deflate(PAYLOAD, -15)),
    "gzip-twice": ("gzip, gzip", _deflate(_deflate(PAYLOAD, 31), 31)),
    "deflate-then-gzip": ("deflate,gzip", _deflate(_deflate(PAYLOAD, 15), 31)),
    "identity": ("identity", PAYLOAD),
}
SLACK = 1.0  # the bound: ends within deadline + 1 s


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    routes = {
        "/echo": echo(),
        "/api/echo": echo(),
        "/v1/echo": echo(),
        "/set-cookie": echo(extra_headers=[("Set-Cookie", f"session_key={SESSION_KEY}; Path=/; HttpOnly")]),
        "/trickle": trickle(interval=1.0),
        "/stall-after-headers": stall_after_headers(),
        "/stall-before-headers": stall_before_headers(),
        "/header-trickle": header_trickle(interval=0.3),
        "/sse-forever": sse_comments_forever(interval=0.1),
        "/big": big_body(2_000_000),
        "/big-unannounced": big_body(2_000_000, declare_length=False),
        "/redirect": redirect("/echo"),
        "/html": raw_answer(200, b"<html><title>x</title></html>", [("Content-Type", "text/html")]),
        "/nan": raw_answer(200, b'{"x": NaN}', [("Content-Type", "application/json")]),
        "/bigint": raw_answer(200, b'{"code":0,"data":{"bot_id":7000000000000000123}}', [("Content-Type", "application/json")]),
        "/split-secret": sse_events(
            [
                b"event: conversation.message.delta\ndata: {\"content\":\"" + API_KEY_2[:6].encode(),
                API_KEY_2[6:].encode() + b"\"}\n\n",
                b"event: done\ndata: {}\n\n",
            ],
            # Far enough apart that a loaded machine does not read two writes as one
            # chunk (the test checks the chunks stay aligned).
            gap=0.3,
        ),
        "/short-stream": sse_events([b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n"], keep_open=5.0),
        "/bomb-1": gzip_bomb(1),
        "/bomb-2": gzip_bomb(2),
        "/not-gzip": raw_answer(200, b'{"code":0}', [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]),
        **{f"/encoded/{name}": raw_answer(200, body, [("Content-Type", "application/json"), ("Content-Encoding", coding)])
           for name, (coding, body) in ENCODED.items()},
    }
    with ScriptedServer(routes) as s:
        yield s


def make_client(url: str, **kwargs: Any) -> ApiClient:
    options: dict[str, Any] = {"request_timeout": DEADLINE, "stream_timeout": DEADLINE}
    options.update(kwargs)
    return ApiClient(
        url,
        Principal("principal-1", API_KEY, SESSION_KEY),
        other=Principal("principal-2", API_KEY_2, SESSION_KEY_2),
        **options,
    )


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[ApiClient]:
    c = make_client(server.url)
    yield c
    c.close()


def last_request_header(server: ScriptedServer, name: str) -> str | None:
    return server.requests[-1].header(name)


# --------------------------------------------------------------------------- deadlines


def bounded(call: Callable[[], object], limit: float) -> BaseException | None:
    """Run ``call`` in a thread; fail (instead of hanging the run) if it is still
    running after ``limit`` seconds. Returns what it raised."""
    outcome: dict[str, BaseException] = {}

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["raised"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        pytest.fail(f"still running after {limit} s: the deadline is not a hard bound")
    return outcome.get("raised")


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/trickle", id="body-trickles-a-byte-a-second"),
        pytest.param("/stall-after-headers", id="stalls-after-headers"),
        pytest.param("/stall-before-headers", id="stalls-before-headers"),
        pytest.param("/header-trickle", id="headers-trickle-forever"),
    ],
)
def test_request_ends_by_its_overall_deadline(client: ApiClient, path: str) -> None:
    started = time.monotonic()
    raised = bounded(lambda: client.request("GET", path), DEADLINE + SLACK + 2)
    elapsed = time.monotonic() - started
    assert isinstance(raised, DeadlineExceeded), raised
    assert DEADLINE - 0.05 <= elapsed <= DEADLINE + SLACK
    assert raised.deadline == DEADLINE
    exchange = client.log[-1]
    assert exchange.error is not None and "deadline" in exchange.error
    assert exchange.elapsed is not None and exchange.elapsed <= DEADLINE + SLACK


@pytest.mark.slow
def test_trickled_bytes_are_kept_on_expiry(client: ApiClient) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        client.request("GET", "/trickle")
    assert caught.value.received.strip() == b"" and len(caught.value.received) >= 1
    assert client.log[-1].status == 200


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/sse-forever", id="sse-comments-forever"),
        pytest.param("/trickle", id="body-trickles"),
        pytest.param("/stall-after-headers", id="stalls-after-headers"),
    ],
)
def test_stream_ends_by_its_overall_deadline(client: ApiClient, path: str) -> None:
    started = time.monotonic()
    seen: list[tuple[bytes, float]] = []

    def consume() -> None:
        with client.stream("GET", path) as stream:
            seen.extend(stream.chunks())

    raised = bounded(consume, DEADLINE + SLACK + 2)
    assert isinstance(raised, DeadlineExceeded), raised
    assert DEADLINE - 0.05 <= time.monotonic() - started <= DEADLINE + SLACK
    exchange = raised.exchange
    assert exchange is not None and exchange.stream
    assert b"".join(c for c, _ in seen).startswith(exchange.response_body[:10])
    if path == "/sse-forever":
        assert len(seen) >= 3 and all(c.startswith(b": keep-alive") for c, _ in seen)
        times = [t for t, _ in exchange.chunks]
        assert times == sorted(times) and 0 < times[0] < DEADLINE
        assert raised.received.startswith(b": keep-alive")


def test_stream_deadline_cannot_be_outrun_by_a_fast_consumer_of_slow_data(client: ApiClient) -> None:
    # The whole life counts: a stream opened with a 0.5 s budget ends by 0.5 s + slack.
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), client.stream("GET", "/sse-forever", timeout=0.5) as stream:
        stream.read_all()
    assert time.monotonic() - started <= 0.5 + SLACK


def test_drain_reads_a_bounded_tail_without_raising(client: ApiClient) -> None:
    with client.stream("GET", "/short-stream", timeout=5) as stream:
        first = next(stream.chunks())
        assert first[0].startswith(b"event: a")
        started = time.monotonic()
        tail = stream.drain(0.5)  # the server holds the stream open for 5 s more
        assert time.monotonic() - started <= 0.5 + SLACK
        assert b"".join(c for c, _ in tail) == b"event: b\ndata: 2\n\n"
        assert stream.done
    assert client.log[-1].response_body == b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"


def test_connection_refused_is_a_clear_transport_error() -> None:
    with make_client(closed_port_url()) as c:
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            c.request("GET", "/v1/bots/1")
    assert time.monotonic() - started < 1
    assert caught.value.cause == "connection refused"
    assert "connection refused (connecting" in str(caught.value)
    assert not isinstance(caught.value, DeadlineExceeded)


# --------------------------------------------------------------------------- a target that went down


def test_after_requests_in_a_row_got_no_answer_the_rest_fail_at_once(server: ScriptedServer) -> None:
    outage = Outage(limit=2)
    down = make_client(closed_port_url(), outage=outage)
    for _ in range(2):
        with pytest.raises(TransportError, match="connection refused"):
            down.request("GET", "/v1/bots/1")
    started = time.monotonic()
    with pytest.raises(TargetDown) as caught:
        down.request("GET", "/v1/bots/1")
    with pytest.raises(TargetDown), down.stream("POST", "/v3/chat"):
        pass
    assert time.monotonic() - started < 0.5
    assert "the target went down mid-run (2 requests in a row got no answer, the last: connection refused" in str(caught.value)
    assert down.log[-1].error is not None and "not sent" in down.log[-1].error
    # The outage is the run's: a client of the same run sharing it is refused too.
    with make_client(server.url, outage=outage) as same_run, pytest.raises(TargetDown):
        same_run.request("GET", "/echo")
    down.close()


def test_any_answer_ends_a_run_of_misses(server: ScriptedServer) -> None:
    outage = Outage(limit=2)
    with make_client(closed_port_url(), outage=outage) as down, make_client(server.url, outage=outage) as up:
        for _ in range(3):
            with pytest.raises(TransportError, match="connection refused"):
                down.request("GET", "/v1/bots/1")
            up.request("GET", "/echo")
        assert outage.down is None
        # A body cut short (here by the cap) came with an answer: the target is up.
        with make_client(server.url, outage=outage, max_body_bytes=1000) as capped:
            for _ in range(3):
                with pytest.raises(ResponseTooLarge):
                    capped.request("GET", "/big")
    assert outage.down is None


def test_a_target_down_is_looked_at_again_once_per_cooldown(server: ScriptedServer) -> None:
    now = [100.0]
    outage = Outage(limit=2, cooldown=10.0, clock=lambda: now[0])
    with make_client(closed_port_url(), outage=outage) as down, make_client(server.url, outage=outage) as up:
        for _ in range(2):
            with pytest.raises(TransportError, match="connection refused"):
                down.request("GET", "/v1/bots/1")
        now[0] += 9.0
        with pytest.raises(TargetDown):
            up.request("GET", "/echo")
        now[0] += 1.0  # the cooldown is over: one request is sent; it misses, so down again
        with pytest.raises(TransportError, match="connection refused") as probe:
            down.request("GET", "/v1/bots/1")
        assert not isinstance(probe.value, TargetDown)
        with pytest.raises(TargetDown):
            up.request("GET", "/echo")
        now[0] += 10.0  # the next look finds it answering: the outage is over
        up.request("GET", "/echo")
        assert outage.down is None
        up.request("GET", "/echo")


def test_a_client_without_an_outage_never_refuses_to_send() -> None:
    with make_client(closed_port_url()) as c:
        for _ in range(5):
            with pytest.raises(TransportError) as caught:
                c.request("GET", "/v1/bots/1")
            assert not isinstance(caught.value, TargetDown)


# --------------------------------------------------------------------------- size cap, redirects, JSON


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_response_size_cap(server: ScriptedServer, path: str) -> None:
    with make_client(server.url, max_body_bytes=1_000_000) as c:
        with pytest.raises(ResponseTooLarge) as caught:
            c.request("GET", path)
        assert caught.value.limit == 1_000_000
        with pytest.raises(ResponseTooLarge), c.stream("GET", path) as stream:
            stream.read_all()
    assert len(c.log[0].response_body) <= c.log.body_cap


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_encoded_bodies_are_decoded(client: ApiClient, name: str) -> None:
    assert client.request("GET", f"/encoded/{name}").body == PAYLOAD
    with client.stream("GET", f"/encoded/{name}") as stream:
        assert stream.read_all() == PAYLOAD


def test_only_the_codings_decoded_within_the_cap_are_asked_for(client: ApiClient, server: ScriptedServer) -> None:
    client.request("GET", "/echo")
    assert last_request_header(server, "Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize("layers", [pytest.param(1, id="gzip"), pytest.param(2, id="gzip-twice")])
def test_a_gzip_bomb_stops_at_the_size_cap_without_decoding_past_it(server: ScriptedServer, layers: int) -> None:
    """~66 KB that decode to 64 MiB (gzip), or 2.4 KB that decode to 1 GiB (gzip, gzip):
    decoded in bounded pieces, the cap is met before memory is. httpx's own decoding
    made each network read one allocation of its whole expansion."""
    cap = 1_000_000
    tracemalloc.start()
    try:
        with make_client(server.url, max_body_bytes=cap) as c:
            with pytest.raises(ResponseTooLarge, match=f"more than {cap} bytes"):
                c.request("GET", f"/bomb-{layers}")
            with pytest.raises(ResponseTooLarge), c.stream("GET", f"/bomb-{layers}") as stream:
                stream.read_all()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak} bytes allocated at the peak, for a cap of {cap}"


def test_a_body_that_is_not_what_its_encoding_says_is_a_clear_transport_error(client: ApiClient) -> None:
    with pytest.raises(TransportError, match="body is not valid gzip") as caught:
        client.request("GET", "/not-gzip")
    assert not isinstance(caught.value, ResponseTooLarge | DeadlineExceeded)


def test_redirects_are_answers_not_followed(client: ApiClient, server: ScriptedServer) -> None:
    before = len(server.requests)
    response = client.request("GET", "/redirect")
    assert response.status == 302
    assert response.headers["location"] == "/echo"
    assert len(server.requests) == before + 1


def test_json_bodies_keep_big_integers_exact(client: ApiClient) -> None:
    big = 2**63 - 1
    response = client.request("POST", "/echo", json={"bot_id": big, "nested": [2**53 + 1]})
    sent = response.json()["body"]
    assert sent == f'{{"bot_id":{big},"nested":[{2**53 + 1}]}}'
    assert client.request("GET", "/bigint").json()["data"]["bot_id"] == 7000000000000000123


@pytest.mark.parametrize("path", ["/html", "/nan"])
def test_non_json_bodies_raise_a_clear_error(client: ApiClient, path: str) -> None:
    response = client.request("GET", path)
    with pytest.raises(NotJson, match="is not JSON"):
        response.json()
    assert response.json_or_none() is None


def test_the_target_cannot_plant_a_cookie(client: ApiClient, server: ScriptedServer) -> None:
    client.request("GET", "/set-cookie", auth="none")
    client.request("GET", "/echo", auth="none")
    assert last_request_header(server, "Cookie") is None
    assert last_request_header(server, "Authorization") is None


# --------------------------------------------------------------------------- auth modes


@pytest.mark.parametrize(
    "path, auth, authorization, cookie",
    [
        pytest.param("/v1/echo", "default", f"Bearer {API_KEY}", None, id="default-openapi-is-bearer"),
        pytest.param("/api/echo", "default", None, f"session_key={SESSION_KEY}", id="default-webapi-is-cookie"),
        pytest.param("/v1/echo", "bearer", f"Bearer {API_KEY}", None, id="bearer"),
        pytest.param("/v1/echo", "cookie", None, f"session_key={SESSION_KEY}", id="cookie"),
        pytest.param("/v1/echo", "both", f"Bearer {API_KEY}", f"session_key={SESSION_KEY}", id="both"),
        pytest.param("/v1/echo", "none", None, None, id="none"),
        pytest.param("/v1/echo", "wrong-bearer", f"Bearer {WRONG_API_KEY}", None, id="wrong-bearer"),
        pytest.param("/api/echo", "wrong-cookie", None, f"session_key={WRONG_SESSION_KEY}", id="wrong-cookie"),
        pytest.param("/v1/echo", "other", f"Bearer {API_KEY_2}", None, id="other-openapi"),
        pytest.param("/api/echo", "other", None, f"session_key={SESSION_KEY_2}", id="other-webapi"),
        pytest.param("/api/echo", "other-bearer", f"Bearer {API_KEY_2}", None, id="other-bearer"),
        pytest.param("/v1/echo", "other-cookie", None, f"session_key={SESSION_KEY_2}", id="other-cookie"),
    ],
)
def test_auth_modes_send_the_right_credential(
    client: ApiClient, server: ScriptedServer, path: str, auth: str, authorization: str | None, cookie: str | None
) -> None:
    client.request("GET", path, auth=auth)
    assert last_request_header(server, "Authorization") == authorization
    assert last_request_header(server, "Cookie") == cookie
    # and the same through a stream
    with client.stream("GET", path, auth=auth) as stream:
        stream.read_all()
    assert last_request_header(server, "Authorization") == authorization
    assert last_request_header(server, "Cookie") == cookie


def test_auth_for_path_decides_the_default(server: ScriptedServer) -> None:
    with make_client(server.url, auth_for_path=lambda path: "cookie") as c:
        c.request("GET", "/v1/echo")
    assert last_request_header(server, "Cookie") == f"session_key={SESSION_KEY}"
    assert last_request_header(server, "Authorization") is None


@pytest.mark.parametrize(
    "principal, other, auth, option",
    [
        pytest.param(Principal("p", None, "sess"), None, "bearer", "--api-key", id="no-api-key"),
        pytest.param(Principal("p", "key", None), None, "cookie", "--session-key", id="no-session-key"),
        pytest.param(Principal("p", "key", None), None, "both", "--session-key", id="both-needs-two"),
        pytest.param(Principal("p", "key", None), None, "other", "second principal", id="no-second-principal"),
        pytest.param(Principal("p", "key", None), Principal("q", "k2", None), "other-cookie", "--session-key-2", id="no-second-session"),
    ],
)
def test_a_missing_credential_is_named(
    server: ScriptedServer, principal: Principal, other: Principal | None, auth: str, option: str
) -> None:
    with ApiClient(server.url, principal, other=other) as c:
        before = len(server.requests)
        with pytest.raises(MissingCredential, match=option):
            c.request("GET", "/v1/echo", auth=auth)
        assert len(server.requests) == before  # nothing was sent


def test_extra_headers_are_sent_but_never_override_the_auth_mode(server: ScriptedServer) -> None:
    extra = {"X-Gateway": "gw-1", "Authorization": "Basic Z3c6Z3c=", "Cookie": "gw=1"}
    with make_client(server.url, extra_headers=extra) as c:
        c.request("GET", "/v1/echo", auth="none")
        assert last_request_header(server, "X-Gateway") == "gw-1"
        assert last_request_header(server, "Authorization") is None
        assert last_request_header(server, "Cookie") is None
        # a test may still send a malformed credential header on purpose
        c.request("GET", "/v1/echo", auth="none", headers={"Authorization": "bearer"})
        assert last_request_header(server, "Authorization") == "bearer"


@pytest.mark.parametrize("auth", ["sideways", "Bearer", ""])
def test_unknown_auth_mode_is_refused(client: ApiClient, auth: str) -> None:
    with pytest.raises(ValueError, match="unknown auth mode"):
        client.request("GET", "/v1/echo", auth=auth)


@pytest.mark.parametrize("path", ["v1/echo", "http://elsewhere/v1/echo"])
def test_paths_must_be_relative_to_the_target(client: ApiClient, path: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        client.request("GET", path)


# --------------------------------------------------------------------------- redaction


def forms(secret: str) -> dict[str, str]:
    j = json.dumps(secret)[1:-1]
    return {
        "raw": secret,
        "json": j,
        "url": quote(secret, safe=""),
        "url-plus": quote_plus(secret),
        "url-default": quote(secret),
        "html": html.escape(secret),
        "html-of-json": html.escape(j),
    }


SECRETS = {"COZE_API_KEY": API_KEY, "COZE_SESSION_KEY": SESSION_KEY, "COZE_API_KEY_2": API_KEY_2, "COZE_SESSION_KEY_2": SESSION_KEY_2}


def assert_no_secret(text: str, where: str) -> None:
    for label, secret in SECRETS.items():
        for form, encoded in forms(secret).items():
            assert encoded not in text, f"{label} ({form}) in {where}"


def test_exchange_log_redacts_secrets_everywhere(client: ApiClient) -> None:
    """Headers, URL query, JSON body, and a response that echoes all of them."""
    client.request("POST", "/v1/echo", json={"key": API_KEY, "session": SESSION_KEY}, params={"k": API_KEY}, auth="both")
    client.request("POST", "/api/echo", json={"key2": API_KEY_2}, auth="other")
    client.request("GET", "/set-cookie", auth="other-bearer")
    with client.stream("GET", "/split-secret") as stream:
        raw = stream.read_all()
    assert API_KEY_2.encode() in raw  # the test itself sees the real bytes
    log = client.log
    artifacts = {
        "to_dict": json.dumps(log.to_dict()),
        "to_curl_script": log.to_curl_script(),
        "to_text": log.to_text(),
        "repr": repr(log) + repr(list(log)),
        "pickle": pickle.dumps(log).decode("latin-1"),
        "client repr": repr(client),
    }
    for where, text in artifacts.items():
        assert_no_secret(text, where)
    # and the secrets were replaced by markers naming them, not dropped
    first = log[0]
    assert dict(first.request_headers)["Authorization"] == "Bearer ***COZE_API_KEY***"
    assert dict(first.request_headers)["Cookie"] == "session_key=***COZE_SESSION_KEY***"
    assert "***COZE_API_KEY***" in first.url
    assert first.request_body == b'{"key":"***COZE_API_KEY***","session":"***COZE_SESSION_KEY***"}'
    assert b"***COZE_API_KEY***" in first.response_body and b"***COZE_SESSION_KEY***" in first.response_body
    assert dict(log[2].response_headers)["Set-Cookie"] == "session_key=***REDACTED***; Path=/; HttpOnly"
    # a secret split across two chunks of a stream is still found, and the chunks stay aligned
    chunks = log[3].chunks
    assert len(chunks) == 3 and b"***COZE_API_KEY_2***" in chunks[0][1] and chunks[1][1] == b'"}\n\n'


def test_secrets_never_in_error_messages(server: ScriptedServer) -> None:
    with make_client(server.url, request_timeout=0.3) as c:
        with pytest.raises(DeadlineExceeded) as caught:
            c.request("GET", "/stall-before-headers", params={"k": API_KEY})
    assert_no_secret(str(caught.value), "exception")
    assert_no_secret(repr(caught.value.exchange), "exception's exchange")


def test_unconfigured_credentials_are_redacted(server: ScriptedServer) -> None:
    # A credential the suite does not know (a gateway token, a cookie) is still a
    # credential: its header value never reaches the log. (/redirect does not echo.)
    with ApiClient(server.url, Principal("p", None, None)) as c:
        c.request("GET", "/redirect", auth="none", headers={"Authorization": "Token unconfigured-token", "Cookie": "a=b; c=d"})
    exchange = c.log[0]
    text = json.dumps(exchange.to_dict())
    for leaked in ("unconfigured-token", "a=b"):
        assert leaked not in text
    assert dict(exchange.request_headers)["Authorization"] == "Token ***REDACTED***"
    assert dict(exchange.request_headers)["Cookie"] == "a=***REDACTED***; c=***REDACTED***"


def test_url_userinfo_is_refused_and_never_echoed(server: ScriptedServer) -> None:
    userinfo_url = server.url.replace("http://", "http://gateway-user:gateway-pass@")
    with pytest.raises(ValueError, match="must not carry credentials") as caught:
        ApiClient(userinfo_url, Principal("p", "key", None))
    assert "gateway-pass" not in str(caught.value) and "gateway-user" not in str(caught.value)
    assert redact_url("https://u:p@host/x?k=v", Redactor()) == "https://***REDACTED***@host/x?k=v"
    assert redact_header("Location", "https://u:pw@elsewhere/", Redactor()) == "https://***REDACTED***@elsewhere/"


def test_extra_redactor_secrets_are_honoured(server: ScriptedServer) -> None:
    with make_client(server.url, redactor=Redactor({"header X-Gateway": "gw-secret-token"})) as c:
        c.request("GET", "/echo", headers={"X-Gateway": "gw-secret-token"})
    assert "gw-secret-token" not in json.dumps(c.log.to_dict())
    assert dict(c.log[0].request_headers)["X-Gateway"] == "***header X-Gateway***"


@pytest.mark.parametrize("principal", [Principal("p1", API_KEY, SESSION_KEY), Principal("p1", None, SESSION_KEY)])
def test_principal_repr_never_shows_secrets(principal: Principal) -> None:
    text = repr(principal) + str(principal)
    assert_no_secret(text, "Principal repr")
    assert "session_key=<set>" in text
    assert ("api_key=<set>" if principal.api_key else "api_key=<unset>") in text


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_principal_refuses_header_breaking_secrets_without_echoing_them(bad: str) -> None:
    with pytest.raises(ValueError, match="no HTTP header can carry") as caught:
        Principal("p", bad, None)
    assert bad not in str(caught.value)


# --------------------------------------------------------------------------- curl reproduction


def test_to_curl_uses_environment_variables_and_flags(client: ApiClient) -> None:
    client.request("POST", "/v1/echo", json={"name": "it's \"quoted\" $HOME `x`"}, auth="bearer")
    client.request("POST", "/api/echo", json={"bot_id": 1}, auth="cookie")
    client.request("GET", "/v1/echo", auth="other")
    client.request("GET", "/v1/echo", auth="wrong-bearer")
    with client.stream("POST", "/v1/echo", json={"stream": True}) as s:
        s.read_all()
    curls = [ex.to_curl() for ex in client.log]
    assert '-H "Authorization: Bearer $COZE_API_KEY"' in curls[0]
    assert "--data-binary '{\"name\":\"it'\\''s \\\"quoted\\\" $HOME `x`\"}'" in curls[0]
    assert '-b "session_key=$COZE_SESSION_KEY"' in curls[1]
    assert '-H "Authorization: Bearer $COZE_API_KEY_2"' in curls[2]
    assert f'-H "Authorization: Bearer {WRONG_API_KEY}"' in curls[3]
    assert curls[4].startswith("curl -sS -i -N")
    assert all(" -N" not in c for c in curls[:4])
    script = client.log.to_curl_script()
    for var in ("COZE_API_KEY", "COZE_SESSION_KEY", "COZE_API_KEY_2"):
        assert f': "${{{var}:?' in script
    assert_no_secret(script, "curl script")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_script_replays_the_same_requests(client: ApiClient, server: ScriptedServer) -> None:
    """Run the script with real curl: the server must see what the client sent."""
    body = {"name": "it's \"quoted\" $HOME `x` 你好", "n": 2**63 - 1}
    client.request("POST", "/v1/echo", json=body, params={"q": "a b&c"}, auth="bearer")
    client.request("POST", "/api/echo", content=b"\x00\xff raw", headers={"Content-Type": "application/octet-stream"}, auth="cookie")
    client.request("GET", "/api/echo", auth="other-cookie")
    sent = server.requests[-3:]
    env = dict(os.environ, COZE_API_KEY=API_KEY, COZE_SESSION_KEY=SESSION_KEY, COZE_SESSION_KEY_2=SESSION_KEY_2)
    done = subprocess.run(
        ["sh", "-c", client.log.to_curl_script()], env=env, capture_output=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    replayed = server.requests[-3:]
    for original, again in zip(sent, replayed, strict=True):
        assert (again.method, again.path, again.query, again.body) == (
            original.method,
            original.path,
            original.query,
            original.body,
        )
        for name in ("Authorization", "Cookie", "Content-Type"):
            assert again.header(name) == original.header(name), name


# --------------------------------------------------------------------------- the log as data


def test_exchange_log_round_trips_through_json_and_pickle(client: ApiClient) -> None:
    client.request("POST", "/v1/echo", json={"a": 1})
    client.request("POST", "/v1/echo", content=b"\xff\xfe binary")
    with client.stream("GET", "/short-stream", timeout=3) as s:
        s.drain(0.3)
    data = json.loads(json.dumps(client.log.to_dict()))
    again = ExchangeLog.from_dict(data)
    assert again.to_dict() == client.log.to_dict()
    unpickled = pickle.loads(pickle.dumps(client.log))
    assert unpickled.to_dict() == client.log.to_dict()
    assert again.to_curl_script() == client.log.to_curl_script()
    assert pickle.loads(pickle.dumps(client.log[0])).to_dict() == client.log[0].to_dict()
    assert isinstance(again[1], Exchange) and again[1].request_body == b"\xff\xfe binary"


def test_exchange_log_is_bounded_and_numbered(server: ScriptedServer) -> None:
    log = ExchangeLog(limit=3)
    with make_client(server.url, log=log) as c:
        for _ in range(5):
            c.request("GET", "/echo")
    assert [ex.index for ex in log] == [3, 4, 5]
    assert log.dropped == 2
    assert "2 earlier exchanges not kept" in log.to_curl_script()


def test_with_log_shares_connections_but_not_logs(client: ApiClient) -> None:
    mine = ExchangeLog()
    view = client.with_log(mine)
    view.request("GET", "/echo")
    view.close()  # a view does not close the shared connections
    client.request("GET", "/echo")
    assert len(mine) == 1 and len(client.log) == 1


def test_summary_and_text_describe_the_exchange(client: ApiClient) -> None:
    client.request("POST", "/v1/echo", json={"a": 1})
    ex = client.log[0]
    assert ex.summary().startswith("POST /v1/echo -> 200 (")
    text = ex.to_text()
    assert "Authorization: Bearer ***COZE_API_KEY***" in text and "HTTP 200" in text


def test_an_open_stream_is_already_redacted_in_every_view(client: ApiClient) -> None:
    with client.stream("GET", "/split-secret") as stream:
        chunks = stream.chunks()
        next(chunks)
        next(chunks)  # the secret has arrived, split across these two chunks
        views = [json.dumps(client.log.to_dict()), pickle.dumps(client.log).decode("latin-1"), client.log.to_text()]
        for view in views:
            assert_no_secret(view, "a view of an open stream")
        assert b"***COZE_API_KEY_2***" in client.log[-1].response_body


def test_concurrent_requests_get_distinct_log_entries(client: ApiClient) -> None:
    def work() -> None:
        for _ in range(3):
            client.request("GET", "/echo")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(ex.index for ex in client.log) == list(range(1, 19))


def test_tls_to_a_plain_http_port_is_a_clear_transport_error(server: ScriptedServer) -> None:
    with make_client(server.url.replace("http://", "https://"), verify=False) as c:
        with pytest.raises(TransportError) as caught:
            c.request("GET", "/echo")
    assert caught.value.cause.startswith("TLS error")
    assert "(connecting, " in str(caught.value)


def test_caller_labels_win_for_a_client_of_the_second_principal(server: ScriptedServer) -> None:
    # The plugin builds principal 2's client with principal 1 as "other".
    labels = Redactor(SECRETS)
    with ApiClient(
        server.url, Principal("principal-2", API_KEY_2, SESSION_KEY_2), other=Principal("principal-1", API_KEY, SESSION_KEY), redactor=labels
    ) as c:
        c.request("GET", "/v1/echo")
        c.request("GET", "/v1/echo", auth="other")
    assert '-H "Authorization: Bearer $COZE_API_KEY_2"' in c.log[0].to_curl()
    assert '-H "Authorization: Bearer $COZE_API_KEY"' in c.log[1].to_curl()


# --------------------------------------------------------------------------- keep-alive


def _stale_keepalive_server() -> tuple[str, list[int], Callable[[], None]]:
    """A server that answers the first request of a connection and keeps it open, then
    closes it without a word when the next request arrives on it -- a keep-alive
    connection whose idle timeout ran out just as the client reused it. Returns its URL,
    the number of requests answered per connection, and a stop function."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    answered: list[int] = []
    stop = threading.Event()
    body = b'{"code":0,"msg":"success","data":{}}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                conn.recv(65536)  # the first request
                conn.sendall(reply)
                answered.append(1)
                conn.recv(65536)  # the next request on the same connection: closed unanswered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(5)
        listener.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}", answered, close


def test_a_keepalive_connection_closed_by_the_server_is_retried_once_on_a_fresh_one() -> None:
    url, answered, close = _stale_keepalive_server()
    try:
        with make_client(url) as c:
            assert c.request("GET", "/v1/bots/1").status == 200
            # Reuses the pooled connection, which the server closes unanswered: the client
            # sends the request again on a new connection and gets its answer.
            assert c.request("GET", "/v1/bots/1").status == 200
        assert len(answered) == 2
    finally:
        close()
