"""Credentials from an email and a password, for a profile with a login endpoint (studio).

A real Coze Studio deployment hands out session cookies at
``POST /api/passport/web/email/login/`` and personal access tokens (the OpenAPI's API
keys) at ``.../pat/create_personal_access_token_and_permission`` (coze-wire.md §1.1).
Given ``--email``/``--password`` (and the ``-2`` pair) without the keys, the suite logs
in and mints what is missing before the preflight; a failure ends the run with one line
naming the step (exit code 3, as the preflight's), never with a wall of test failures.
The password is sent once, to the login endpoint, and never printed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from conformance.oracle.profile import Profile
from conformance.settings import Settings
from conformance.transport.client import ApiClient, Principal, TransportError
from conformance.transport.redact import Redactor

__all__ = ["LoginError", "log_in"]


class LoginError(Exception):
    """A step of logging in failed; the message names the principal and the step."""


def _session(headers: Any) -> str | None:
    for header in headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == "session_key":
            return rest.split(";", 1)[0].strip() or None
    return None


def _code(response: Any) -> Any:
    body = response.json_or_none()
    return body.get("code") if isinstance(body, dict) else None


def log_in(settings: Settings, profile: Profile) -> Settings:
    """``settings`` with the session key and API key of each principal that has an
    email and a password but lacks them. Raises :class:`LoginError`."""
    names = {e.name for e in profile.endpoints}
    changes: dict[str, Any] = {}
    for suffix, who in (("", "first principal (--email)"), ("_2", "second principal (--email-2)")):
        email, password = getattr(settings, f"email{suffix}"), getattr(settings, f"password{suffix}")
        if not (email and password):
            continue
        if "login" not in names:
            raise LoginError(f"profile {profile.name!r} has no login endpoint: give --api-key/--session-key instead of --email")
        session, key = getattr(settings, f"session_key{suffix}"), getattr(settings, f"api_key{suffix}")
        client = ApiClient(
            settings.target_url or "",
            Principal(f"login{suffix}"),
            request_timeout=settings.request_timeout,
            stream_timeout=settings.stream_timeout,
            extra_headers=dict(settings.headers),
            verify=False if settings.insecure else (settings.ca_bundle or True),
            redactor=Redactor(dict(settings.secrets, password=password)),
        )
        try:
            if session is None:
                login = profile.endpoint("login")
                answer = client.request(login.method, login.path, json={"email": email, "password": password}, auth="none")
                session = _session(answer.headers)
                if _code(answer) != 0 or session is None:
                    raise LoginError(
                        f"login of the {who} failed: {login.key} answered HTTP {answer.status} with code {_code(answer)!r}"
                        + ("" if session else " and no session_key cookie")
                    )
                changes[f"session_key{suffix}"] = session
            if key is None and "pat_create" in names:
                pat = profile.endpoint("pat_create")
                answer = client.request(
                    pat.method, pat.path, json={"name": "cz-conformance", "duration_day": "1"}, auth="none",
                    headers={"Cookie": f"session_key={session}"},
                )
                body = answer.json_or_none()
                data = body.get("data") if isinstance(body, dict) else None
                token = data.get("token") if isinstance(data, dict) else None
                if not (isinstance(token, str) and token):
                    raise LoginError(
                        f"minting an API key for the {who} failed: {pat.key} answered HTTP {answer.status} "
                        f"with code {_code(answer)!r}"
                    )
                changes[f"api_key{suffix}"] = token
        except TransportError as exc:
            raise LoginError(f"logging in the {who}: {exc}") from None
        finally:
            client.close()
    if not changes:
        return settings
    sources = dict(settings.sources, **{k: "login" for k in changes})
    return dataclasses.replace(settings, sources=sources, **changes)
