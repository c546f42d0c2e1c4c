"""schemathesis, run on the exported OpenAPI document against the embedded reference
server, finds nothing -- in every phase, the stateful one following the document's
links through every operation.

The run is schemathesis's own CLI in a subprocess (its stable interface), with the
settings ``coze-conformance export-openapi --schemathesis-config`` writes
(``conformance/oracle/schemathesis.toml``: the one place where a check is off, with its
reason), a fixed seed and a bounded number of examples. Its reports (JSON and NDJSON)
say what it did; the assertions read them rather than its console text where they can.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from conformance.oracle.openapi import LINKS, SCHEMATHESIS_CONFIG, build_openapi
from conformance.oracle.profile import load_profile
from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig

#: Runs whole suites or servers for seconds: out of the fast loop (-m 'not slow').
pytestmark = pytest.mark.slow

pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")

PROFILE = load_profile("doc")
SEED = 7
#: Examples per operation in the examples, coverage and fuzzing phases (the stateful
#: phase's own count is in schemathesis.toml).
MAX_EXAMPLES = 15
PHASES = ("examples", "coverage", "fuzzing", "stateful")
#: The whole run, on a 2-core machine shared with other work, stays well inside this.
TIME_LIMIT_SECONDS = 120


def operation_label(endpoint_key: str) -> str:
    """``POST /v1/bots/:bot_id`` as schemathesis names it: ``POST /v1/bots/{bot_id}``."""
    return re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", endpoint_key)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One schemathesis run; its exit code, output, reports and duration."""
    work = tmp_path_factory.mktemp("schemathesis")
    document = work / "openapi.json"
    document.write_text(json.dumps(build_openapi("doc"), ensure_ascii=False), encoding="utf-8")
    alice = DEV_PRINCIPALS[0]
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(SCHEMATHESIS_CONFIG),
        "run", str(document),
        "--phases", ",".join(PHASES),
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--report", "json,ndjson",
        "--report-dir", str(work / "report"),
        "-H", f"Authorization: Bearer {alice.api_key}",
        "-H", f"Cookie: session_key={alice.session_key}",
    ]
    with ReferenceServer(ServerConfig(token_delay=0, rate_limits=False)) as server:
        started = time.monotonic()
        # cwd: the work folder, so schemathesis's example database starts empty.
        done = subprocess.run(
            [*command, "--url", server.url], cwd=work, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS * 2,
        )
        elapsed = time.monotonic() - started
    (report,) = (work / "report").glob("*.json")
    (events,) = (work / "report").glob("*.ndjson")
    return {
        "returncode": done.returncode,
        "output": done.stdout + done.stderr,
        "report": json.loads(report.read_text(encoding="utf-8")),
        "events": [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if line],
        "elapsed": elapsed,
    }


def test_schemathesis_finds_no_failure_in_any_phase(run: dict[str, Any]) -> None:
    report = run["report"]
    assert run["returncode"] == 0, run["output"][-6000:]
    assert report["failures"] == [] and report["errors"] == [], run["output"][-6000:]
    assert {name: phase["status"] for name, phase in report["phases"].items()} == dict.fromkeys(PHASES, "success")
    assert report["operations"]["tested"] == report["operations"]["selected"] == len(PROFILE.endpoints)
    assert report["seed"] == SEED and report["complete"]


def test_the_run_is_bounded_in_time(run: dict[str, Any]) -> None:
    assert run["elapsed"] < TIME_LIMIT_SECONDS, f"schemathesis took {run['elapsed']:.0f} s"


def stateful_calls(events: list[dict[str, Any]]) -> list[tuple[str, bool, int | None]]:
    """(operation, whether a link filled it, HTTP status) of every stateful request."""
    calls = []
    for event in events:
        finished = event.get("ScenarioFinished")
        if finished is None or finished["phase"] != "stateful":
            continue
        recorder = finished["recorder"]
        for case_id, case in recorder["cases"].items():
            value = case["value"]
            interaction = recorder["interactions"].get(case_id) or {}
            status = (interaction.get("response") or {}).get("status_code")
            calls.append((f"{value['method']} {value['path']}", bool(case.get("is_transition_applied")), status))
    return calls


def test_the_stateful_phase_reaches_every_operation_through_the_links(run: dict[str, Any]) -> None:
    calls = stateful_calls(run["events"])
    operations = {operation_label(e.key) for e in PROFILE.endpoints}
    called = Counter(label for label, _, _ in calls)
    assert set(called) == operations, f"never called in the stateful phase: {operations - set(called)}"
    # Every operation a link leads to was called with the id an earlier answer gave,
    # and at least once answered with success: a workflow ran through it.
    targets = {operation_label(PROFILE.endpoint(target).key) for _, _, target, _, _ in LINKS}
    linked_success = Counter(label for label, linked, status in calls if linked and status is not None and 200 <= status < 300)
    assert targets <= set(linked_success), f"no linked success: {targets - set(linked_success)}; calls: {sorted(Counter(calls).items())}"
    # ... and schemathesis followed every link of the document.
    match = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", run["output"])
    assert match is not None, run["output"][-3000:]
    assert int(match[1]) == int(match[2]) == int(match[3]) == len(LINKS)
