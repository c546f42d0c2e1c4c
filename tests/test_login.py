"""Credentials from an email and a password (conformance/transport/login.py) and the
preconditions check (conformance/transport/preconditions.py), against the independent
server's studio dialect: the suite logs in, mints an API key, and says in one line
what is wrong -- never printing the password, the cookie or the minted token."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.oracle.profile import load_profile
from conformance.settings import Settings
from conformance.transport.client import ApiClient, Principal
from conformance.transport.login import LoginError, log_in
from conformance.transport.preconditions import check_preconditions
from tests.independent.server import IndependentServer
from tests.independent.studio_dialect import account

ROOT = Path(__file__).resolve().parents[1]
STUDIO = load_profile("studio")


@pytest.fixture(scope="module")
def server() -> Iterator[IndependentServer]:
    independent = IndependentServer(dialect="studio")
    independent.start()
    yield independent
    independent.stop()


def principals(server: IndependentServer) -> tuple[str, str]:
    (n1, _), (n2, _) = list(server.principals.items())[:2]
    return n1, n2


def settings_for(server: IndependentServer, **changes: str) -> Settings:
    n1, n2 = principals(server)
    base = Settings(
        target_url=server.url, profile="studio",
        email=account(n1).email, password=account(n1).password, email_2=account(n2).email, password_2=account(n2).password,
    )
    return dataclasses.replace(base, **changes)


def test_log_in_gets_a_session_and_mints_an_api_key(server: IndependentServer) -> None:
    settings = log_in(settings_for(server), STUDIO)
    assert settings.session_key and settings.api_key and settings.session_key_2 and settings.api_key_2
    assert settings.sources["session_key"] == settings.sources["api_key_2"] == "login"
    client = ApiClient(server.url, Principal("p", settings.api_key, settings.session_key))
    try:
        assert client.request("POST", "/api/playground_api/space/list", json={}).json()["code"] == 0
        assert client.request("GET", "/v1/bots/1", auth="bearer").json()["code"] != 700012006  # the key is accepted
    finally:
        client.close()


def test_given_keys_are_kept(server: IndependentServer) -> None:
    n1, _ = principals(server)
    api_key, session_key = server.principals[n1]
    settings = log_in(settings_for(server, api_key=api_key, session_key=session_key, email_2="", password_2=""), STUDIO)
    assert (settings.api_key, settings.session_key) == (api_key, session_key)


def test_a_wrong_password_is_one_clear_error(server: IndependentServer) -> None:
    wrong = "not-the-password-0193"
    with pytest.raises(LoginError) as raised:
        log_in(settings_for(server, password=wrong), STUDIO)
    text = str(raised.value)
    assert text.startswith("login of the first principal (--email) failed: POST /api/passport/web/email/login/ answered")
    assert wrong not in text and "example.com" not in text


def test_a_profile_without_login_refuses_an_email(server: IndependentServer) -> None:
    with pytest.raises(LoginError, match="profile 'doc' has no login endpoint"):
        log_in(settings_for(server, profile="doc"), load_profile("doc"))


def test_preconditions_of_a_ready_deployment_hold(server: IndependentServer) -> None:
    settings = log_in(settings_for(server), STUDIO)
    client = ApiClient(server.url, Principal("p", settings.api_key, settings.session_key))
    try:
        assert check_preconditions(client, STUDIO, bot_id=None, space_id=None) is None
    finally:
        client.close()


def test_a_key_of_another_user_is_named_as_the_unmet_precondition(server: IndependentServer) -> None:
    """The bot the check makes is the first principal's; read with the second's key, get_online_info
    answers 110000001 (not the owner) on a real Studio, or another refusal: either is named."""
    first, second = log_in(settings_for(server), STUDIO), log_in(settings_for(server, email="", password=""), STUDIO)
    client = ApiClient(server.url, Principal("p", second.api_key_2, first.session_key))
    try:
        unmet = check_preconditions(client, STUDIO, bot_id=None, space_id=None)
    finally:
        client.close()
    assert unmet is not None and unmet.startswith("precondition not met: ") and "(GET /v1/bot/get_online_info answered code" in unmet


def test_a_run_with_a_wrong_password_ends_in_one_line(server: IndependentServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZE_")}
    n1, _ = principals(server)
    env.update(COZE_TARGET_URL=server.url, COZE_EMAIL=account(n1).email, COZE_PASSWORD="wrong-password-7781")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "--profile", "studio", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 3, done.stdout[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "conformance setup:" in line]
    assert len(lines) == 1 and "login of the first principal (--email) failed" in lines[0]
    assert "wrong-password-7781" not in done.stdout + done.stderr
