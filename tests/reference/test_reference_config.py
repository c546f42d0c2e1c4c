"""ServerConfig: documented defaults, clear errors for bad values, no secrets in repr."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.reference import (
    DEV_PRINCIPALS,
    PrincipalConfig,
    ReferenceServer,
    ServerConfig,
)


def test_defaults_are_the_documented_ones() -> None:
    config = ServerConfig()
    assert [(p.name, p.api_key, p.session_key) for p in config.principals] == [
        ("alice", "dev-alice-api-key", "dev-alice-session-key"),
        ("bob", "dev-bob-api-key", "dev-bob-session-key"),
    ]
    # spec "速率限制": Chat 60, Bot 管理 30, Bot 信息 100 per minute per user.
    assert (config.rate_limits, config.rate_window) == (True, 60.0)
    assert [config.limit_for(g) for g in ("chat", "management", "info")] == [60, 30, 100]
    assert (config.host, config.port, config.token_delay, config.max_body_bytes) == ("127.0.0.1", 0, 0.02, 1024 * 1024)
    # Every variant knob defaults to the documented, preferred form.
    assert (config.id_style, config.success_msg, config.answer_style) == ("numeric", "success", "echo")
    assert (config.forbidden_status, config.unknown_id_status, config.auth_modes) == (403, 404, "both")
    assert (config.start_events, config.line_ending, config.space_after_colon) == (True, "\n", True)
    assert (config.sse_extras, config.multiline_data, config.bom, config.chunk_sizes) == (False, False, False, None)
    assert config.content_type == "text/event-stream"
    assert (config.terminal_event, config.error_event) == ("conversation.stream.done", "conversation.error")
    assert config.keep_open_after_terminal == 0


def test_repr_shows_no_secret() -> None:
    text = repr(ServerConfig()) + repr(DEV_PRINCIPALS)
    assert "alice" in text
    for principal in DEV_PRINCIPALS:
        assert principal.api_key not in text
        assert principal.session_key not in text


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        pytest.param({"id_style": "uuid"}, "id_style", id="id_style"),
        pytest.param({"answer_style": "poem"}, "answer_style", id="answer_style"),
        pytest.param({"forbidden_status": 401}, "forbidden_status", id="forbidden_status"),
        pytest.param({"unknown_id_status": True}, "unknown_id_status", id="unknown_id_status-bool"),
        pytest.param({"auth_modes": "bearer"}, "auth_modes", id="auth_modes"),
        pytest.param({"line_ending": "\n\n"}, "line_ending", id="line_ending"),
        pytest.param({"terminal_event": "end"}, "terminal_event", id="terminal_event"),
        pytest.param({"error_event": "failure"}, "error_event", id="error_event"),
        pytest.param({"token_delay": -1}, "token_delay", id="token_delay"),
        pytest.param({"keep_open_after_terminal": float("nan")}, "keep_open_after_terminal", id="keep_open-nan"),
        pytest.param({"port": 70000}, "port", id="port"),
        pytest.param({"max_body_bytes": 0}, "max_body_bytes", id="max_body_bytes"),
        pytest.param({"rate_window": 0}, "rate_window", id="rate_window"),
        pytest.param({"chat_limit": 0}, "chat_limit", id="chat_limit"),
        pytest.param({"info_limit": 1.5}, "info_limit", id="info_limit-float"),
        pytest.param({"success_msg": ""}, "success_msg", id="success_msg"),
        pytest.param({"content_type": "application/json"}, "content_type", id="content_type"),
        pytest.param({"chunk_sizes": (5, 2)}, "chunk_sizes", id="chunk_sizes"),
        # JSON wire forms (wireforms.py)
        pytest.param({"json_extra_keys": 1}, "json_extra_keys", id="json_extra_keys-int"),
        pytest.param({"json_key_order": "sorted"}, "json_key_order", id="json_key_order"),
        pytest.param({"json_transfer": "deflate"}, "json_transfer", id="json_transfer"),
        pytest.param({"error_http_status": 200}, "error_http_status", id="error_http_status-int"),
        pytest.param({"error_data": None}, "error_data", id="error_data-none"),
        pytest.param({"unset_fields": "null"}, "unset_fields", id="unset_fields"),
        pytest.param({"principals": ()}, "principals", id="no-principals"),
        pytest.param({"principals": (DEV_PRINCIPALS[0], DEV_PRINCIPALS[0])}, "principals", id="duplicate-principal"),
        pytest.param(
            {"principals": (PrincipalConfig("a", "k1", "shared"), PrincipalConfig("b", "shared", "k2"))},
            "principals",
            id="shared-secret",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(fields: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=rf"ServerConfig\.{field_name}"):
        ServerConfig(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"name": "", "api_key": "k", "session_key": "s"}, id="empty-name"),
        pytest.param({"name": "a", "api_key": "with space", "session_key": "s"}, id="space-in-key"),
        pytest.param({"name": "a", "api_key": "k", "session_key": "x;y"}, id="semicolon-in-cookie"),
    ],
)
def test_a_bad_principal_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"PrincipalConfig\."):
        PrincipalConfig(**fields)


def test_seeding_for_an_unknown_principal_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown principal 'carol'"):
        ReferenceServer().seed_published_bot(principal="carol")


def test_url_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = ReferenceServer().url
