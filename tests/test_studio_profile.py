"""The studio profile end to end against the reference server's studio dialect, as a
user runs it against a deployment (``--target-url``, both principals' keys and logins):
capabilities probed off SKIP their requirements with the probe's evidence and leave the
verdict INCOMPLETE; an unmet precondition (no model configured) ends the run with one
line and exit code 3; a bot given with ``--bot-id`` is used and checked first."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.against import run_suite

CAPABILITY_REQUIREMENTS = {"STUDIO-CHAT-012": "section_id", "STUDIO-CHAT-013": "nonstream", "STUDIO-CHAT-014": "retrieve"}


def run(knobs: dict[str, Any], *args: str) -> tuple[int, str, dict[str, Any] | None]:
    with tempfile.TemporaryDirectory() as reports:
        done = run_suite("reference", {"dialect": "studio", **knobs}, ["--profile", "studio", "-p", "no:randomly", "--report-dir", reports, *args])
        path = Path(reports) / "results.json"
        results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        return done.returncode, done.stdout + done.stderr, results


@pytest.mark.slow
def test_absent_capabilities_skip_with_evidence_and_leave_the_verdict_incomplete() -> None:
    code, out, results = run({"studio_nonstream": False, "studio_retrieve": False, "studio_section_id": False})
    assert results is not None and results["verdict"]["status"] == "INCOMPLETE", out[-2000:]
    outcomes = {r["id"]: r for r in results["requirements"]}
    for rid, name in CAPABILITY_REQUIREMENTS.items():
        assert outcomes[rid]["outcome"] == "SKIP", (rid, outcomes[rid])
        assert f"capability {name} is absent on this deployment (" in out
    assert "POST /v3/chat with stream false answered HTTP 200 text/event-stream" in out
    assert "GET /v3/chat/retrieve answered HTTP 404" in out
    assert all(r["outcome"] == "PASS" for r in results["requirements"] if r["id"] not in CAPABILITY_REQUIREMENTS)


@pytest.mark.slow
def test_all_capabilities_present_judge_every_requirement() -> None:
    code, out, results = run({})
    assert code == 0 and results is not None and results["verdict"]["status"] == "CONFORMANT", out[-2000:]
    assert {r["outcome"] for r in results["requirements"]} == {"PASS"}
    assert len(results["requirements"]) == 48  # AUTH-008 (login) too: the logins are given


@pytest.mark.slow
def test_a_deployment_without_a_model_ends_in_one_line() -> None:
    code, out, results = run({"studio_no_model": True})
    assert code == 3, out[-2000:]
    lines = [line for line in out.splitlines() if "precondition not met" in line]
    assert len(lines) == 1 and "has no model configured" in lines[0] and "answered code 100000013" in lines[0]
    assert results is None or not results["requirements"] or all(r["outcome"] != "FAIL" for r in results["requirements"])
