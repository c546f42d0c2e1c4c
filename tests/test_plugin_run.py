"""The plugin as users run it: preflight exit codes, the report header, inertness.

Each test runs pytest in a subprocess (the way a user or a CI job does), so a stuck
preflight would show as a timeout here rather than hang the project's own run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.keys import SUITE_DIR
from conformance.transport.preflight import PREFLIGHT_TIMEOUT
from tests.support.servers import (
    ScriptedServer,
    close_without_answer,
    closed_port_url,
    html_page,
    stall_before_headers,
    trickle,
    unauthorized,
)

SECRET = 'k"e/y+w=i%th-secret'


def _pytest(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COZE_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    with ScriptedServer(request.param()) as scripted:
        yield scripted


#: Bounded termination (never a speed): a run against a target that never answers ends
#: within five times the preflight's deadline, interpreter start-up and a loaded CI
#: machine included (the deadline itself is pinned in tests/test_preflight_unit.py).
BOUND = 5 * PREFLIGHT_TIMEOUT


def _target(url: str) -> dict[str, str]:
    return {"COZE_TARGET_URL": url, "COZE_API_KEY": SECRET}


@pytest.mark.slow
def test_unreachable_target_exits_3_within_the_bound() -> None:
    started = time.monotonic()
    result = _pytest(str(SUITE_DIR), env=_target(closed_port_url()))
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert elapsed < BOUND, f"{elapsed:.1f} s (bound: 5 x the {PREFLIGHT_TIMEOUT:g} s preflight deadline)"
    lines = [line for line in result.stderr.splitlines() if "preflight" in line]
    assert len(lines) == 1 and "unreachable" in lines[0], result.stderr
    assert "passed" not in result.stdout and "failed" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "kind"),
    [
        pytest.param(html_page, "not-this-api", id="html-page"),
        pytest.param(unauthorized, "credentials", id="rejects-credentials"),
        pytest.param(stall_before_headers, "unreachable", id="stalls"),
        pytest.param(lambda: trickle(total=10_000, interval=1.0), "unreachable", id="trickles"),
        pytest.param(close_without_answer, "unreachable", id="closes-the-socket"),
    ],
    indirect=["server"],
)
def test_wrong_target_exits_3_with_one_line(server: ScriptedServer, kind: str) -> None:
    started = time.monotonic()
    result = _pytest(str(SUITE_DIR), env=_target(server.url))
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert elapsed < BOUND, f"{elapsed:.1f} s (bound: 5 x the {PREFLIGHT_TIMEOUT:g} s preflight deadline)"
    (line,) = [line for line in result.stderr.splitlines() if "preflight" in line]
    assert kind.split("-")[0] in line or kind in line, line
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.slow
def test_embedded_run_prints_the_header_and_never_a_secret() -> None:
    result = _pytest(str(SUITE_DIR), "--co", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    header = [line for line in result.stdout.splitlines() if line.startswith("conformance: target ")]
    assert len(header) == 1, result.stdout
    assert "(embedded reference server); profile doc; auth principal 1: bearer+cookie" in header[0]
    assert "principal 2: bearer+cookie; strict: no" in header[0]


@pytest.mark.slow
def test_strict_shows_in_the_header() -> None:
    result = _pytest(str(SUITE_DIR), "--co", "--strict", timeout=120)
    assert "strict: yes (SHOULD requirements fail)" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_list_requirements_needs_no_target_and_no_network() -> None:
    result = _pytest("--list-requirements", env={"COZE_TARGET_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    assert "CHAT-SSE-004" in result.stdout and "conformance: target" not in result.stdout


def test_list_requirements_lists_the_profiles_own() -> None:
    result = _pytest("conformance", "--list-requirements", env={"COZE_PROFILE": "coze"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("profile coze:") and "COZE-SSE-002" in result.stdout
    assert "CHAT-SSE-004" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("--profile", "coze", "--target-url", "http://127.0.0.1:9", "--api-key", "k"),
            "profile 'coze' creates bots in a workspace: give --space-id (or COZE_SPACE_ID)",
            id="coze-needs-a-space",
        ),
        pytest.param(
            ("--dialect", "coze", "--target-url", "http://127.0.0.1:9", "--api-key", "k"),
            "--dialect (from command line) sets the embedded server's dialect",
            id="dialect-needs-the-embedded-server",
        ),
        pytest.param(("--dialect", "cloud"), "invalid --dialect 'cloud' (from command line): unknown dialect", id="bad-dialect"),
    ],
)
def test_profile_and_dialect_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = _pytest("conformance", *args)
    assert result.returncode == 4, result.stdout + result.stderr
    assert message in result.stdout + result.stderr


TIME_LINE = re.compile(
    r"^time: (?P<wall>[0-9.]+) s wall; waiting for rate windows: chat (?P<chat>[0-9.]+) s, management (?P<management>[0-9.]+) s, "
    r"info (?P<info>[0-9.]+) s; rate-limit phase (?P<phase>[0-9.]+) s(?: \(after [0-9.]+ s waiting for the other tests\))?; "
    r"streaming (?P<streaming>[0-9.]+) s; other (?P<other>[0-9.]+) s; floor from the budget (?P<floor>[0-9.]+) s$"
)


@pytest.mark.slow
def test_an_embedded_run_says_where_its_time_went(tmp_path: Path) -> None:
    """A small real run with a short window and a tight chat budget, so the pacer must
    wait: the terminal's time line and results.json's timing agree, every part is
    non-negative and together they do not exceed the wall time."""
    from jsonschema import Draft202012Validator

    from conformance.reporting.baseline import report_schema

    result = _pytest(
        str(SUITE_DIR / "test_chat_stream.py"), str(SUITE_DIR / "test_ratelimit.py"),
        "--rate-window", "2", "--rate-limit", "chat=2", "--report-dir", str(tmp_path), timeout=180,
    )
    assert result.returncode in (0, 2), result.stdout + result.stderr  # INCOMPLETE: most of the suite deselected
    lines = [m for line in result.stdout.splitlines() if (m := TIME_LINE.match(line))]
    assert len(lines) == 1, result.stdout
    shown = {k: float(v) for k, v in lines[0].groupdict().items()}
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    timing = results["timing"]
    assert not [e.message for e in Draft202012Validator(report_schema("results")).iter_errors(results)]
    assert timing["workers"] == 1 and timing["ratelimit_phase_ran"] is True
    parts = [*timing["waiting_seconds"].values(), timing["ratelimit_phase_seconds"], timing["barrier_seconds"],
             timing["streaming_seconds"], timing["other_seconds"]]
    assert all(p >= 0 for p in parts)
    assert sum(parts) <= timing["wall_seconds"] * timing["workers"] + 0.01
    assert timing["waiting_seconds"]["chat"] > 0 and timing["requests"]["chat"] > 2 and timing["streaming_seconds"] > 0
    budgets, window = timing["floor"]["budgets"], timing["floor"]["window_seconds"]
    assert budgets["chat"] == 2 and window == 2
    # The pacer waited for chat, so some principal sent more than a budget of it: at
    # least one window for chat, and the phase's own.
    assert timing["floor"]["windows"] >= 2
    assert timing["floor"]["seconds"] == timing["floor"]["windows"] * window
    for name, key in (("wall", "wall_seconds"), ("phase", "ratelimit_phase_seconds"), ("streaming", "streaming_seconds"),
                      ("other", "other_seconds"), ("floor", None)):
        value = timing["floor"]["seconds"] if key is None else timing[key]
        assert shown[name] == pytest.approx(value, abs=0.051), name
    assert shown["chat"] == pytest.approx(timing["waiting_seconds"]["chat"], abs=0.051)
