"""Each profile against the other dialect: ``--profile coze --dialect doc`` and
``--profile doc --dialect coze`` fail on exactly the requirement ids committed in
docs/cross-dialect.json (tests/test_cross_dialect.py checks it); and ``--profile doc``
against the reference server's studio dialect with ``--bot-id`` of a bot published there
(so that setup succeeds, as it would against a real Coze Studio with a published bot):
its failures are what a reader of the documentation meets on a real deployment, each
keyed to the row of coze-wire.md §5 that explains it (``STUDIO_ROWS``).

    python -m tests.support.cross_dialect            # print what the runs fail now
    python -m tests.support.cross_dialect --write    # commit it to docs/cross-dialect.json

Why these runs matter: a profile is only useful if it tells a server of the other
dialect something precise. Both runs are serial, with a fixed Hypothesis seed, so the
failing set is the same from run to run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "cross-dialect.json"
#: (profile, dialect of the reference server)
PAIRS = (("coze", "doc"), ("doc", "coze"), ("doc", "studio"))
#: Dialects the doc profile meets as a remote target with --bot-id of a bot published there.
WITH_BOT = frozenset({"studio"})
SUITE_ARGS = ("-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--fuzz-examples", "2", "--hypothesis-seed", "0")


def run(profile: str, dialect: str) -> dict[str, Any]:
    """One suite run: its exit code, verdict, and the requirement ids that FAILed."""
    with tempfile.TemporaryDirectory() as reports:
        args = [sys.executable, "-m", "pytest", "conformance", "--profile", profile]
        if dialect in WITH_BOT:
            done = _run_with_bot(dialect, [*args, *SUITE_ARGS, "--report-dir", reports])
        else:
            done = subprocess.run(
                [*args, "--dialect", dialect, *SUITE_ARGS, "--report-dir", reports],
                cwd=ROOT, capture_output=True, text=True, timeout=600,
            )
        results = json.loads((Path(reports) / "results.json").read_text(encoding="utf-8"))
    failed = sorted(r["id"] for r in results["requirements"] if r["outcome"] == "FAIL")
    outcome = {"profile": profile, "dialect": dialect, "exit_code": done.returncode, "verdict": results["verdict"]["status"], "failed": failed}
    if dialect in WITH_BOT:
        outcome["coze_wire_rows"] = {rid: list(STUDIO_ROWS.get(rid, ())) for rid in failed}
    return outcome


#: Why each doc requirement fails against the studio dialect: the rows of coze-wire.md
#: §5's discrepancy table (its "#" column) that explain it.
STUDIO_ROWS: dict[str, tuple[int, ...]] = {
    "AUTH-001": (15,),  # get_online_info answers the bare object, no code 0
    "AUTH-002": (11, 12),  # the internal chat and create need Studio's own bodies
    "AUTH-005": (18,),  # no credentials on /v3: HTTP 200 with 700012006, not 401
    "AUTH-006": (18,),  # a wrong bearer token: 700012006
    "AUTH-007": (18, 19),  # a cookie on an OpenAPI route is ignored: 700012006
    "CHAT-001": (3,),  # stream omitted answers SSE
    "CHAT-CT-001": (3,),
    "CHAT-REQ-002": (23,),  # an unknown bot: 103100001, not 400/404
    "CHAT-REQ-004": (3,),
    "CHAT-MSG-005": (22,),  # a message without content_type is accepted
    "CHAT-SSE-017": (4,),  # bare payloads, no message_item
    "CHAT-SSE-018": (9,),  # no usage on stream events
    "CANCEL-001": (10,),  # cancel needs chat_id too
    "RUN-001": (11,),  # the internal chat's body is bot_id/conversation_id/query/scene
    "BOT-CREATE-001": (12,),  # create needs space_id and icon_uri
    "BOT-ONLINE-001": (15,),
    "BOT-ONLINE-007": (17,),  # 9-digit business codes with HTTP 200
    "BOT-GET-002": (17,),
    "BOT-GET-003": (2, 16),  # version a string, no status
    "BOT-GET-004": (16,),  # prompt_info.prompt, no prompt
    "BOT-GET-006": (16,),  # no created_at/updated_at/published_at
    "BOT-GET-008": (17,),
    "ERR-001": (17,),  # codes outside the documented list
    "ISO-001": (17,),  # another's bot: 110000001
    "ISO-002": (17,),
    "RATE-001": (20,),  # no rate limiting
    "RATE-002": (20,),
    "RATE-003": (20,),
    "REQ-005": (3, 15),  # valid requests answered in Studio's forms
}


def _run_with_bot(dialect: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The suite against a reference server of ``dialect`` as a remote target, with both
    principals' keys and --bot-id of a bot made and published there as its own client
    would (studio: the cookie, the principal's space, connector 1024)."""
    import os

    import httpx

    from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig

    p1, p2 = DEV_PRINCIPALS[:2]
    with ReferenceServer(ServerConfig(dialect=dialect)) as server:
        cookies = {"session_key": p1.session_key}
        created = httpx.post(
            f"{server.url}/api/draftbot/create", cookies=cookies,
            json={"space_id": p1.space_id, "name": "cross-dialect", "description": "", "icon_uri": "default_icon/x.png"},
        ).json()
        bot_id = created["data"]["bot_id"]
        httpx.post(
            f"{server.url}/api/draftbot/publish", cookies=cookies,
            json={"space_id": p1.space_id, "bot_id": bot_id, "connectors": {"1024": {}}},
        ).raise_for_status()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COZE_")}
        env.update(
            COZE_TARGET_URL=server.url, COZE_BOT_ID=str(bot_id),
            COZE_API_KEY=p1.api_key, COZE_SESSION_KEY=p1.session_key, COZE_API_KEY_2=p2.api_key, COZE_SESSION_KEY_2=p2.session_key,
        )
        return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def current() -> list[dict[str, Any]]:
    return [run(profile, dialect) for profile, dialect in PAIRS]


def main(argv: list[str]) -> int:
    runs = current()
    text = json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n"
    if "--write" in argv:
        COMMITTED.write_text(text, encoding="utf-8")
        print(f"wrote {COMMITTED.relative_to(ROOT)}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
