"""Run the conformance suite against a server started here, as a user would: a
separate pytest process with ``--target-url`` and both principals' credentials.

    python -m tests.support.against reference [knob=value ...] [-- pytest args]
    python -m tests.support.against independent [-- pytest args]
    python -m tests.support.against independent dialect=studio [-- pytest args]

Knobs are ``ServerConfig`` fields of the reference server (``id_style=prefixed``,
``forbidden_status=404``, ``start_events=false``, ``token_delay=0`` ...), or
``IndependentServer`` arguments of the independent one (``dialect=coze``, ``dialect=studio``,
``token_delay=0`` ...; the studio dialect also passes ``COZE_SPACE_ID``). The exit code
is pytest's. ``run_suite`` is the same from Python, for self-tests.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    url: str
    keys: tuple[str, str, str, str]  # api key, session key, api key 2, session key 2
    #: The first principal's workspace, for a server whose bots live in one (the
    #: independent server's studio dialect); None: not passed.
    space_id: str | None = None
    #: (email, password) of each principal, for a server with a login (studio); () none.
    logins: tuple[tuple[str, str], ...] = ()

    def env(self) -> dict[str, str]:
        names = ("COZE_API_KEY", "COZE_SESSION_KEY", "COZE_API_KEY_2", "COZE_SESSION_KEY_2")
        env = {"COZE_TARGET_URL": self.url, **dict(zip(names, self.keys, strict=True))}
        if self.space_id is not None:
            env["COZE_SPACE_ID"] = self.space_id
        for suffix, (email, password) in zip(("", "_2"), self.logins, strict=False):
            env[f"COZE_EMAIL{suffix}"], env[f"COZE_PASSWORD{suffix}"] = email, password
        return env


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    # ServerConfig fields are immutable: a set literal ({'fault'}) means a frozenset.
    return frozenset(value) if isinstance(value, set) else value


@contextmanager
def serve(kind: str, knobs: Mapping[str, Any] | None = None) -> Iterator[Target]:
    """Start the reference server (with ``knobs``) or the independent one."""
    knobs = dict(knobs or {})
    if kind == "reference":
        from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig

        config = ServerConfig(**knobs)
        p1, p2 = (config.principals or DEV_PRINCIPALS)[:2]
        from conformance.reference.config import LOGIN_DIALECTS

        logins = tuple((p.email, p.password) for p in (p1, p2)) if config.dialect in LOGIN_DIALECTS else ()
        with ReferenceServer(config) as server:
            yield Target(server.url, (p1.api_key, p1.session_key, p2.api_key, p2.session_key), logins=logins)
    elif kind == "independent":
        from tests.independent.server import IndependentServer

        independent = IndependentServer(**knobs)
        independent.start()
        try:
            (n1, (k1, s1)), (n2, (k2, s2)) = list(independent.principals.items())[:2]
            space_id = None
            logins: tuple[tuple[str, str], ...] = ()
            if independent.dialect == "studio":
                # Its principals' emails, passwords and spaces derive from their names
                # (tests/independent/studio_dialect.py): the suite needs the first's space,
                # and logs in with the emails and passwords.
                from tests.independent.studio_dialect import account

                space_id = account(n1).space_id
                logins = tuple((account(n).email, account(n).password) for n in (n1, n2))
            yield Target(independent.url, (k1, s1, k2, s2), space_id, logins)
        finally:
            independent.stop()
    else:
        raise SystemExit(f"unknown server {kind!r}: reference or independent")


def run_suite(
    kind: str, knobs: Mapping[str, Any] | None = None, args: Sequence[str] = (), timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``pytest conformance`` against a fresh server; returns the finished process."""
    with serve(kind, knobs) as target:
        env = {**os.environ, **target.env()}
        env.pop("COZE_STRICT", None)
        return subprocess.run(
            [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def main(argv: Sequence[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    kind, rest = argv[0], list(argv[1:])
    pytest_args: list[str] = []
    if "--" in rest:
        cut = rest.index("--")
        rest, pytest_args = rest[:cut], rest[cut + 1 :]
    knobs = {}
    for item in rest:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"knob {item!r}: expected name=value")
        knobs[name] = _value(text)
    result = run_suite(kind, knobs, pytest_args)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
