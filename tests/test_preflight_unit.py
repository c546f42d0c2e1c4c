"""The preflight against local servers: an unreachable or wrong target, or
rejected credentials, end in one clear line within the time budget; a target
that answers JSON envelopes passes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.transport.client import ApiClient, Principal
from conformance.transport.preflight import (
    UNKNOWN_BOT_ID,
    PreflightError,
    check_same_principal,
    preflight,
)
from tests.support.servers import (
    Exchange,
    Handler,
    ScriptedServer,
    close_without_answer,
    closed_port_url,
    envelope,
    html_page,
    json_answer,
    raw_answer,
    redirect,
    reset_without_answer,
    sse_comments_forever,
    stall_after_headers,
    stall_before_headers,
    trickle,
    unauthorized,
)

API_KEY = 'pat_"pre/flight+=%key'
SESSION_KEY = "sess/pre+flight=%"


def client_for(url: str, *, api_key: str | None = API_KEY, session_key: str | None = None, other: Principal | None = None) -> ApiClient:
    return ApiClient(url, Principal("principal-1", api_key, session_key), other=other, request_timeout=30)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def start(routes: dict[str, Handler] | Handler) -> ScriptedServer:
        server = ScriptedServer(routes).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_unreachable_target_ends_fast_with_one_line() -> None:
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(PreflightError) as caught, client_for(url) as client:
        preflight(client)
    assert time.monotonic() - started < 10
    assert caught.value.kind == "unreachable"
    assert str(caught.value).startswith(f"target {url} is unreachable: connection refused (preflight, ")
    assert "\n" not in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(stall_before_headers(), id="stalls-before-headers"),
        pytest.param(stall_after_headers(), id="stalls-after-headers"),
        pytest.param(trickle(interval=0.5), id="trickles"),
    ],
)
def test_preflight_is_bounded_by_its_budget(serve: Any, behaviour: Handler) -> None:
    server = serve(behaviour)
    started = time.monotonic()
    with pytest.raises(PreflightError) as caught, client_for(server.url) as client:
        preflight(client, timeout=1.5)
    assert time.monotonic() - started <= 1.5 + 1.0
    assert caught.value.kind == "unreachable"
    assert "no complete answer to GET /v1/bot/get_online_info within 1.5 s" in str(caught.value)


def test_an_event_stream_answer_is_this_api(serve: Any) -> None:
    # The headers of an endless event stream already show the API's answer shape.
    server = serve(sse_comments_forever())
    started = time.monotonic()
    with client_for(server.url) as client:
        report = preflight(client, timeout=1.5)
    assert time.monotonic() - started < 1.5
    assert report.probes[0].media_type == "text/event-stream"


@pytest.mark.parametrize(
    "behaviour, kind, says",
    [
        pytest.param(html_page(), "not-this-api", 'answered 200 with an HTML page ("Welcome to nginx!"), not JSON', id="html-page"),
        pytest.param(html_page(404, "404 Not Found"), "not-this-api", "answered 404 with an HTML page", id="html-404"),
        pytest.param(raw_answer(200, b"OK", [("Content-Type", "text/plain")]), "not-this-api", "2 bytes of text/plain", id="plain-text"),
        pytest.param(raw_answer(404, b""), "not-this-api", "an empty body", id="empty-404"),
        pytest.param(redirect("https://api.example/"), "not-this-api", "redirect to https://api.example/; if that is the API", id="redirect"),
        pytest.param(html_page(502, "502 Bad Gateway"), "unreachable", "answered 502 with an HTML page", id="gateway-502"),
        pytest.param(unauthorized(), "credentials", "rejects the configured credentials with 401: --api-key (COZE_API_KEY)", id="all-401"),
        pytest.param(json_answer(200, envelope(401, "unauthorized")), "credentials", "--api-key (COZE_API_KEY)", id="envelope-code-401"),
        pytest.param(close_without_answer(), "unreachable", "unreachable: server closed the connection early", id="closes-the-socket"),
        pytest.param(reset_without_answer(), "unreachable", "unreachable: connection reset by peer", id="resets-the-connection"),
    ],
)
def test_wrong_targets_and_rejected_credentials(serve: Any, behaviour: Handler, kind: str, says: str) -> None:
    server = serve(behaviour)
    with pytest.raises(PreflightError) as caught, client_for(server.url) as client:
        preflight(client)
    assert caught.value.kind == kind
    message = str(caught.value)
    assert message.startswith(f"target {server.url} ")
    assert says in message
    assert message.endswith(" s)") and "\n" not in message
    assert API_KEY not in message and json.dumps(API_KEY)[1:-1] not in message
    assert caught.value.log is not None and len(caught.value.log) == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(json_answer(404, envelope(404, "bot not found")), id="envelope-404"),
        pytest.param(json_answer(400, envelope(400, "invalid bot_id")), id="envelope-400"),
        pytest.param(json_answer(200, envelope(0, data={"bot_id": UNKNOWN_BOT_ID})), id="envelope-200"),
        pytest.param(json_answer(403, envelope(403, "forbidden")), id="envelope-403"),
        pytest.param(json_answer(429, {"code": 429, "msg": "slow down"}), id="rate-limited"),
    ],
)
def test_json_envelopes_pass(serve: Any, behaviour: Handler) -> None:
    server = serve(behaviour)
    with client_for(server.url) as client:
        report = preflight(client)
    (probe,) = report.probes
    assert (probe.method, probe.path, probe.auth, probe.credential) == ("GET", "/v1/bot/get_online_info", "bearer", "COZE_API_KEY")
    assert not probe.rejected
    (request,) = server.requests
    assert request.query == [("bot_id", str(UNKNOWN_BOT_ID))]
    assert request.header("Authorization") == f"Bearer {API_KEY}"
    assert report.server_headers.get("Content-Type") == "application/json"
    text = json.dumps(report.to_dict())
    assert API_KEY not in text and json.dumps(API_KEY)[1:-1] not in text


def test_session_key_only_probes_the_cookie_class_without_side_effects(serve: Any) -> None:
    server = serve(json_answer(404, envelope(404, "bot not found")))
    with client_for(server.url, api_key=None, session_key=SESSION_KEY) as client:
        report = preflight(client)
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/api/draftbot/update_display_info")
    assert json.loads(request.body) == {"bot_id": UNKNOWN_BOT_ID}  # names no bot: nothing can change
    assert request.header("Cookie") == f"session_key={SESSION_KEY}"
    assert request.header("Authorization") is None
    assert report.probes[0].auth == "cookie"


def test_a_rejected_second_principal_is_named(serve: Any) -> None:
    def by_key(ex: Exchange) -> None:
        ok = ex.headers.get("Authorization") == f"Bearer {API_KEY}"
        json_answer(404 if ok else 401, envelope(404 if ok else 401))(ex)

    server = serve(by_key)
    other = Principal("principal-2", "pat_second", None)
    with pytest.raises(PreflightError) as caught, client_for(server.url, other=other) as client:
        preflight(client)
    assert caught.value.kind == "credentials"
    assert "--api-key-2 (COZE_API_KEY_2)" in str(caught.value)
    assert "--api-key (COZE_API_KEY)" not in str(caught.value)
    assert [r.header("Authorization") for r in server.requests] == [f"Bearer {API_KEY}", "Bearer pat_second"]


# --------------------------------------------------------------------------- one principal?


def fake_api(owner_of_api_key: str, *, publish_ok: bool = True, bot_id: Any = 7000000000000000001) -> dict[str, Handler]:
    """Create/publish with the cookie, read with Bearer; the read succeeds only
    when the API key's owner is the cookie's owner."""

    def read(ex: Exchange) -> None:
        if ex.headers.get("Authorization") != f"Bearer {API_KEY}":
            json_answer(401, envelope(401))(ex)
        elif owner_of_api_key == "same":
            json_answer(200, envelope(0, data={"bot_id": bot_id, "name": "x"}))(ex)
        else:
            json_answer(404, envelope(404, "bot not found"))(ex)

    return {
        "POST /api/draftbot/create": json_answer(200, envelope(0, data={"bot_id": bot_id, "name": "x"})),
        "POST /api/draftbot/publish": json_answer(200, envelope(0, data={"bot_id": bot_id, "version": 1}))
        if publish_ok
        else json_answer(500, envelope(500)),
        f"GET /v1/bots/{bot_id}": read,
    }


def test_same_principal(serve: Any) -> None:
    server = serve(fake_api("same"))
    with client_for(server.url, session_key=SESSION_KEY) as client:
        assert check_same_principal(client) is None
    create, publish, read = server.requests
    name = json.loads(create.body)["name"]
    assert name.startswith("cz-conf-preflight-") and len(name) <= 30
    assert create.header("Cookie") == f"session_key={SESSION_KEY}" and create.header("Authorization") is None
    assert json.loads(publish.body) == {"bot_id": 7000000000000000001}
    assert read.header("Authorization") == f"Bearer {API_KEY}" and read.header("Cookie") is None


def test_bot_id_as_string_is_understood(serve: Any) -> None:
    server = serve(fake_api("same", bot_id="7000000000000000002"))
    with client_for(server.url, session_key=SESSION_KEY) as client:
        assert check_same_principal(client) is None
    assert json.loads(server.requests[1].body) == {"bot_id": 7000000000000000002}


def test_different_principals_is_a_usage_error_message(serve: Any) -> None:
    server = serve(fake_api("someone else"))
    with client_for(server.url, session_key=SESSION_KEY) as client:
        message = check_same_principal(client)
    assert message is not None
    assert message.startswith("--api-key and --session-key belong to different principals")
    assert "answered 404" in message and API_KEY not in message and SESSION_KEY not in message


def test_a_failed_publish_makes_it_inconclusive_not_an_error(serve: Any) -> None:
    server = serve(fake_api("someone else", publish_ok=False))
    with client_for(server.url, session_key=SESSION_KEY) as client:
        assert check_same_principal(client) is None


def test_rejected_session_key_is_a_credentials_error(serve: Any) -> None:
    server = serve(unauthorized())
    with pytest.raises(PreflightError) as caught, client_for(server.url, session_key=SESSION_KEY) as client:
        check_same_principal(client)
    assert caught.value.kind == "credentials" and "--session-key (COZE_SESSION_KEY)" in str(caught.value)


def test_check_is_skipped_without_both_keys(serve: Any) -> None:
    server = serve(unauthorized())
    with client_for(server.url, session_key=None) as client:
        assert check_same_principal(client) is None
    assert server.requests == []
