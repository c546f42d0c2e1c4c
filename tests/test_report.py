"""Certification: verdicts, exit codes, the four reports, the baseline in a real run,
the curl reproduction and redaction across every artifact.

The unit tests feed synthetic records to the verdict logic. The integration tests
run pytest (``pytester``) on a small stand-in suite: a harness conftest wires the
real plugin, the real ``check`` fixture and client, and the reporter exactly as a
conformance run does, against a local HTTP server that echoes the credentials it
receives -- so every artifact has a secret to leak.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from jsonschema import Draft202012Validator

from conformance.oracle.outcomes import Outcome, Record
from conformance.reporting.baseline import report_schema
from conformance.reporting.html import requirements_html
from conformance.reporting.verdict import (
    NOT_RUN,
    XFAIL,
    RequirementResult,
    Status,
    Verdict,
    exit_code,
    judge,
    requirement_results,
)
from conformance.transport.redact import Redactor

# --------------------------------------------------------------------------- verdict (unit)

LEVELS = {"M1": "MUST", "M2": "MUST", "M3": "MUST", "S1": "SHOULD", "Y1": "MAY"}
MUSTS = ["M1", "M2", "M3"]


def rec(rid: str, outcome: Outcome, nodeid: str = "t::a") -> Record:
    return Record(rid, LEVELS[rid], outcome, nodeid=nodeid)


def all_pass(*extra: Record) -> list[Record]:
    return [rec(rid, Outcome.PASS) for rid in MUSTS] + list(extra)


def verdict_of(records: list[Record], errors: tuple[str, ...] = (), stale: tuple[str, ...] = (), excused: Collection[str] = ()) -> Verdict:
    results = requirement_results(records, LEVELS, [*MUSTS, "S1"], lambda r: "known" if r.requirement in excused else None)
    return judge(results, MUSTS, errors, stale)


VERDICTS = [
    pytest.param(all_pass(rec("S1", Outcome.PASS)), (), (), set(), Status.CONFORMANT,
                 "CONFORMANT — all 3 MUST requirements pass", id="conformant"),
    pytest.param(all_pass(rec("S1", Outcome.WARN)), (), (), set(), Status.CONFORMANT,
                 "CONFORMANT — all 3 MUST requirements pass; 1 SHOULD warning", id="conformant-with-a-warning"),
    pytest.param(all_pass(rec("M1", Outcome.SKIP, "t::b")), (), (), set(), Status.CONFORMANT,
                 "CONFORMANT — all 3 MUST requirements pass", id="skipped-somewhere-judged-elsewhere"),
    pytest.param([rec("M1", Outcome.PASS), rec("M2", Outcome.SKIP)], (), (), set(), Status.INCOMPLETE,
                 "INCOMPLETE — 2 of 3 MUST requirements did not run (M2, M3)", id="incomplete"),
    pytest.param([rec("M1", Outcome.FAIL)], (), (), set(), Status.NOT_CONFORMANT,
                 "NOT CONFORMANT — 1 of 3 MUST requirements fail (M1); 2 of 3 MUST requirements did not run (M2, M3)",
                 id="a-fail-beats-not-run-which-is-still-named"),
    pytest.param([rec("M1", Outcome.PASS), rec("S1", Outcome.FAIL)], (), (), set(), Status.NOT_CONFORMANT,
                 "NOT CONFORMANT — 1 SHOULD/MAY requirements fail under --strict (S1); 2 of 3 MUST requirements did not run (M2, M3)",
                 id="a-strict-fail-beats-not-run"),
    pytest.param([rec("M1", Outcome.PASS), rec("M2", Outcome.FAIL)], (), (), {"M2"}, Status.INCOMPLETE,
                 "INCOMPLETE — 1 of 3 MUST requirements did not run (M3); 1 baselined",
                 id="not-run-beats-a-baselined-fail"),
    pytest.param(all_pass(), ("t::x (setup): KeyError: 'bot'",), (), set(), Status.INCONCLUSIVE,
                 "INCONCLUSIVE — 1 error (t::x)", id="inconclusive"),
    pytest.param([rec("M1", Outcome.FAIL)], ("t::x (call): TypeError: boom", "t::y (setup): OSError"), (), set(), Status.NOT_CONFORMANT,
                 "NOT CONFORMANT — 1 of 3 MUST requirements fail (M1); 2 errors (t::x, t::y); 2 of 3 MUST requirements did not run (M2, M3)",
                 id="a-fail-beats-an-error-which-is-still-named"),
    pytest.param([rec("M1", Outcome.PASS)], ("t::x (call): TypeError: boom",), (), set(), Status.INCONCLUSIVE,
                 "INCONCLUSIVE — 1 error (t::x); 2 of 3 MUST requirements did not run (M2, M3)",
                 id="an-error-beats-not-run"),
    pytest.param(all_pass(rec("M2", Outcome.FAIL, "t::b"), rec("S1", Outcome.WARN), rec("S1", Outcome.WARN, "t::c")), (), (), set(),
                 Status.NOT_CONFORMANT, "NOT CONFORMANT — 1 of 3 MUST requirements fail (M2); 1 SHOULD warning", id="not-conformant"),
    pytest.param(all_pass(rec("M1", Outcome.FAIL), rec("M3", Outcome.FAIL)), (), (), {"M3"}, Status.NOT_CONFORMANT,
                 "NOT CONFORMANT — 1 of 3 MUST requirements fail (M1); 1 baselined", id="not-conformant-and-baselined"),
    pytest.param(all_pass(rec("M3", Outcome.FAIL)), (), (), {"M3"}, Status.NOT_CONFORMANT,
                 "NOT CONFORMANT — 1 requirements fail, all baselined (M3)", id="baselined-failures-are-still-failures"),
    pytest.param(all_pass(rec("S1", Outcome.FAIL)), (), (), set(), Status.NOT_CONFORMANT,
                 "NOT CONFORMANT — 1 SHOULD/MAY requirements fail under --strict (S1)", id="strict-should-failure"),
    pytest.param(all_pass(), (), ("requirement M2",), set(), Status.CONFORMANT,
                 "CONFORMANT — all 3 MUST requirements pass; 1 stale baseline entry", id="stale-entry-is-named"),
]


@pytest.mark.parametrize(("records", "errors", "stale", "excused", "status", "line"), VERDICTS)
def test_verdict(records: list[Record], errors: tuple[str, ...], stale: tuple[str, ...], excused: set[str], status: Status, line: str) -> None:
    verdict = verdict_of(records, errors, stale, excused)
    assert verdict.status is status
    assert verdict.line == line


def test_the_issue_example_line() -> None:
    musts = [f"CHAT-SSE-{n:03d}" for n in range(1, 62)]
    levels = {**dict.fromkeys(musts, "MUST"), "CHAT-100": "SHOULD", "CHAT-101": "SHOULD"}
    records = [Record(rid, "MUST", Outcome.FAIL if rid in musts[3:6] else Outcome.PASS) for rid in musts]
    records += [Record("CHAT-100", "SHOULD", Outcome.WARN), Record("CHAT-101", "SHOULD", Outcome.WARN), Record(musts[0], "MUST", Outcome.FAIL, nodeid="b")]
    results = requirement_results(records, levels, musts, lambda r: "ISSUE-1" if r.requirement == musts[0] else None)
    line = judge(results, musts).line
    assert line == "NOT CONFORMANT — 3 of 61 MUST requirements fail (CHAT-SSE-004, CHAT-SSE-005, CHAT-SSE-006); 2 SHOULD warnings; 1 baselined"


def test_a_long_list_of_ids_is_cut() -> None:
    musts = [f"M{n}" for n in range(1, 9)]
    results = requirement_results([], dict.fromkeys(musts, "MUST"), musts)
    assert judge(results, musts).line == "INCOMPLETE — 8 of 8 MUST requirements did not run (M1, M2, M3, M4, M5, …)"


def test_requirement_results_fold_records_per_requirement_and_test() -> None:
    records = [
        rec("M1", Outcome.PASS, "t::a"),
        rec("M1", Outcome.FAIL, "t::b"),
        rec("M2", Outcome.FAIL, "t::a"),
        rec("M2", Outcome.PASS, "t::c"),
        rec("S1", Outcome.SKIP, "t::a"),
        rec("Y1", Outcome.WARN, "t::d"),
    ]
    results = requirement_results(records, LEVELS, ["M3", "M1", "M2", "S1"], lambda r: "ISSUE-7" if r.requirement == "M2" else None)
    assert list(results) == ["M3", "M1", "M2", "S1", "Y1"]  # expected order first, then the rest
    assert results["M3"] == RequirementResult("M3", "MUST", NOT_RUN)
    assert results["M1"].outcome == "FAIL" and results["M1"].tests == (("t::a", "PASS"), ("t::b", "FAIL"))
    assert results["M2"].outcome == XFAIL and results["M2"].baseline_reasons == ("ISSUE-7",)
    assert results["M2"].tests == (("t::a", XFAIL), ("t::c", "PASS"))
    assert results["S1"].outcome == "SKIP" and [r.outcome for r in results["S1"].findings] == [Outcome.SKIP]
    assert results["Y1"].outcome == "WARN" and results["Y1"].level == "MAY"


def test_verdict_to_dict_matches_the_results_schema_part() -> None:
    levels = {"CHAT-001": "MUST", "CHAT-002": "MUST", "CHAT-003": "SHOULD"}
    records = [Record("CHAT-001", "MUST", Outcome.FAIL), Record("CHAT-003", "SHOULD", Outcome.WARN)]
    verdict = judge(requirement_results(records, levels, levels), ["CHAT-001", "CHAT-002"], ["t::x (call): E"], ["requirement CHAT-002"])
    schema = report_schema("results")
    sub = {**schema["properties"]["verdict"], "$defs": schema["$defs"]}
    assert not list(Draft202012Validator(sub).iter_errors(verdict.to_dict()))


def test_the_html_requirement_table_puts_failures_first_and_escapes() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "A-001", "level": "MUST", "outcome": "PASS", "tests": [1], "gloss": "<b>ok</b>"},
        {"id": "A-002", "level": "MUST", "outcome": "NOT RUN", "tests": [], "gloss": None},
        {"id": "A-003", "level": "SHOULD", "outcome": "WARN", "tests": [1, 2], "gloss": "w"},
        {"id": "A-004", "level": "MUST", "outcome": "FAIL", "tests": [1], "gloss": "f & g"},
    ]
    page = requirements_html(rows)
    assert [page.index(rid) for rid in ("A-004", "A-003", "A-002", "A-001")] == sorted(page.index(rid) for rid in ("A-001", "A-002", "A-003", "A-004"))
    assert "&lt;b&gt;ok&lt;/b&gt;" in page and "f &amp; g" in page and "<b>ok" not in page
    assert "Requirements (4): 1 FAIL, 1 NOT RUN, 1 PASS, 1 WARN" in page


# --------------------------------------------------------------------------- exit codes (unit)

V_CLEAN = verdict_of(all_pass())
V_FAIL = verdict_of(all_pass(rec("M2", Outcome.FAIL)))
V_STRICT = verdict_of(all_pass(rec("S1", Outcome.FAIL)))
V_BASELINED = verdict_of(all_pass(rec("M2", Outcome.FAIL)), excused={"M2"})
V_STALE = verdict_of(all_pass(), stale=("requirement M2",))
V_ERROR = verdict_of(all_pass(), errors=("t::x (call): boom",))
V_FAIL_AND_ERROR = verdict_of(all_pass(rec("M2", Outcome.FAIL)), errors=("t::x (call): boom",))
V_INCOMPLETE = verdict_of([rec("M1", Outcome.PASS)])


@pytest.mark.parametrize(
    ("pytest_status", "verdict", "code"),
    [
        pytest.param(0, V_CLEAN, 0, id="clean"),
        pytest.param(0, V_INCOMPLETE, 0, id="incomplete-is-0-read-the-verdict"),
        pytest.param(0, V_BASELINED, 0, id="baselined-failure"),
        pytest.param(1, V_FAIL, 1, id="fail"),
        pytest.param(1, V_STRICT, 1, id="strict-should-fail"),
        pytest.param(0, V_STALE, 1, id="stale-entry"),
        pytest.param(1, V_ERROR, 3, id="error"),
        pytest.param(1, V_FAIL_AND_ERROR, 1, id="fail-beats-error"),
        pytest.param(2, V_FAIL, 2, id="interrupted-passes-through"),
        pytest.param(3, V_CLEAN, 3, id="internal-error-passes-through"),
        pytest.param(4, V_CLEAN, 4, id="usage-error-passes-through"),
        pytest.param(5, V_INCOMPLETE, 5, id="nothing-collected-passes-through"),
        pytest.param(pytest.ExitCode.TESTS_FAILED, V_FAIL, 1, id="exit-code-enum"),
    ],
)
def test_exit_code(pytest_status: int, verdict: Verdict, code: int) -> None:
    assert exit_code(pytest_status, verdict) == code


# --------------------------------------------------------------------------- the harness

API_KEY = 'ak"/+=%-0123456789abcdef'
SESSION_KEY = 'sk"/+=%-fedcba9876543210'

HARNESS = f'''
"""A stand-in conformance run: the real plugin, check fixture, client and reporter."""
import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import conformance.oracle.catalogue as C
import conformance.plugin as P
from conformance.oracle.catalogue import Catalogue, Requirement
from conformance.reporting.certification import PLUGIN_NAME, CertificationReporter
from conformance.settings import Settings, resolve_settings

API_KEY = {API_KEY!r}
SESSION_KEY = {SESSION_KEY!r}


def _req(rid, level):
    return Requirement(id=rid, level=level, area="DEMO", endpoint="POST /v3/chat",
                       quote=f"「{{rid}} 的规范原文」", gloss=f"{{rid}} is checked", profiles=("doc",), retired=False)


CATALOGUE = Catalogue(
    [_req("DEMO-001", "MUST"), _req("DEMO-002", "MUST"), _req("DEMO-003", "SHOULD"), _req("DEMO-004", "MUST")],
    sha256="a" * 64, source=Path("demo.toml"),
)


class Echo(BaseHTTPRequestHandler):
    """Answers every request with the credentials it carried: a leaky server."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({{"code": 0, "msg": "success", "data": {{
            "authorization": self.headers.get("Authorization"), "cookie": self.headers.get("Cookie")}}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


def _reporter(config, run):
    return CertificationReporter(config, run, catalogue=CATALOGUE, spec_sha256="b" * 64)


def pytest_configure(config):
    original = C.load_catalogue
    C.load_catalogue = lambda: CATALOGUE  # the plugin's check fixture reads it
    config.add_cleanup(lambda: setattr(C, "load_catalogue", original))
    if hasattr(config, "workerinput"):
        return  # the plugin takes the controller's settings (below)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={{"poll_interval": 0.02}}, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
        thread.join()

    config.add_cleanup(stop)
    settings = dataclasses.replace(
        resolve_settings(config), target_url=f"http://127.0.0.1:{{server.server_port}}", api_key=API_KEY, session_key=SESSION_KEY
    )
    config.stash[P.SETTINGS_KEY] = settings
    run = P._Run(config)
    config.stash[P.RUN_KEY] = run
    config.pluginmanager.register(run, "conformance-run")
    config.pluginmanager.register(_reporter(config, run), PLUGIN_NAME)


def pytest_plugin_registered(plugin, manager):
    # An xdist worker: the plugin registers its run object in its pytest_configure;
    # the reporter goes in right then, where the plugin's install() call sits.
    if isinstance(plugin, P._Run) and hasattr(plugin.config, "workerinput") and not manager.has_plugin(PLUGIN_NAME):
        config = plugin.config
        config.stash[P.SETTINGS_KEY] = Settings.from_worker(config.workerinput["coze_settings"])
        manager.register(_reporter(config, plugin), PLUGIN_NAME)
'''

# The stand-in suite. DEMO-001, -002 and -004 are MUST, DEMO-003 SHOULD.
SUITE = '''
import pytest
from conftest import API_KEY, SESSION_KEY


@pytest.mark.requirement("DEMO-001")
def test_one(check):
    check("DEMO-001", True)


@pytest.mark.requirement("DEMO-002", "DEMO-003")
def test_two(check, api):
    key = API_KEY  # --showlocals prints it
    print("on stdout:", API_KEY, SESSION_KEY)
    api.request("POST", "/api/draftbot/create", json={"name": "demo"})
    answer = api.request("POST", "/v3/chat", json={"bot_id": "7", "user_id": "u"})
    check("DEMO-003", WARN_DEMO_003 is False, expected="a", actual="b")
    check("DEMO-002", FAIL_DEMO_002 is False, expected=400, actual=answer.body.decode())


@pytest.mark.requirement("DEMO-004")
def test_four(check):
    check("DEMO-004", FAIL_DEMO_004 is False, expected="x", actual="y")
'''


def make_suite(pytester: pytest.Pytester, *, fail2: bool = False, warn3: bool = False, fail4: bool = False, extra: str = "") -> None:
    """The harness and the stand-in suite; the flags break DEMO-002, DEMO-003, DEMO-004."""
    pytester.makeconftest(HARNESS)
    flags = f"FAIL_DEMO_002 = {fail2}\nWARN_DEMO_003 = {warn3}\nFAIL_DEMO_004 = {fail4}\n"
    pytester.makepyfile(test_demo=SUITE + "\n" + flags + extra)


def run(pytester: pytest.Pytester, *args: str | Path) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def baseline_file(pytester: pytest.Pytester, *entries: str) -> Path:
    path = pytester.path / "baseline.toml"
    path.write_text("expected = []\n" if not entries else "\n".join(entries), encoding="utf-8")
    return path


def requirement_entry(rid: str, reason: str = "known") -> str:
    return f'[[expected]]\nrequirement = "{rid}"\nreason = "{reason}"\n'


def last_line(result: pytest.RunResult) -> str:
    return [line for line in result.outlines if line.strip()][-1]


# --------------------------------------------------------------------------- runs: verdicts and exit codes


@pytest.mark.parametrize(
    ("flags", "args", "code", "line"),
    [
        pytest.param({}, (), 0, "CONFORMANT — all 3 MUST requirements pass", id="conformant"),
        pytest.param({"warn3": True}, (), 0, "CONFORMANT — all 3 MUST requirements pass; 1 SHOULD warning", id="a-warning-passes"),
        pytest.param({"fail2": True}, (), 1, "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-002)", id="not-conformant"),
        pytest.param({}, ("-k", "not four"), 0, "INCOMPLETE — 1 of 3 MUST requirements did not run (DEMO-004)", id="deselected"),
        pytest.param({"fail2": True}, ("-x",), 1,
                     "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-002); 1 of 3 MUST requirements did not run (DEMO-004)",
                     id="stopped-by-x"),
        pytest.param({"warn3": True}, ("-o", "strict=true"), 1,
                     "NOT CONFORMANT — 1 SHOULD/MAY requirements fail under --strict (DEMO-003)", id="strict"),
    ],
)
def test_the_verdict_is_the_last_line_and_the_exit_code_follows(
    pytester: pytest.Pytester, flags: dict[str, bool], args: tuple[str, ...], code: int, line: str
) -> None:
    make_suite(pytester, fail2=flags.get("fail2", False), warn3=flags.get("warn3", False))
    result = run(pytester, *args)
    assert last_line(result) == line
    assert result.ret == code


def test_an_error_is_inconclusive_and_exits_3(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.fixture
def broken():
    raise KeyError("a suite bug")


@pytest.mark.requirement("DEMO-001")
def test_crashing_fixture(check, broken):
    check("DEMO-001", True)
''')
    result = run(pytester)
    assert result.ret == 3
    assert last_line(result) == "INCONCLUSIVE — 1 error (test_demo.py::test_crashing_fixture)"
    result.stdout.fnmatch_lines(["ERROR test_demo.py::test_crashing_fixture (setup): KeyError: 'a suite bug'"])


def test_a_fail_beats_an_error_in_the_exit_code(pytester: pytest.Pytester) -> None:
    make_suite(pytester, fail2=True, extra='''
@pytest.mark.requirement("DEMO-001")
def test_buggy(check):
    check("DEMO-001", True)
    {}["missing"]
''')
    result = run(pytester)
    assert result.ret == 1
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-002); 1 error (test_demo.py::test_buggy)"


def test_server_misbehaviour_inside_a_fixture_is_a_fail_not_an_error(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.fixture
def created(check):
    check("DEMO-004", False, expected="a bot id", actual="nothing")


@pytest.mark.requirement("DEMO-004")
def test_needs_a_bot(created):
    pass
''')
    result = run(pytester)
    assert result.ret == 1
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-004)"


# --------------------------------------------------------------------------- runs: one truth (a FAIL is a failing test)


def junit_cases(out: Path) -> dict[str, tuple[str, str]]:
    """Test name -> (its JUnit outcome, the message and text of a failure or error)."""
    cases = {}
    for case in ET.parse(out / "junit.xml").getroot().iter("testcase"):
        child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        outcome = "passed" if child is None else child.tag
        cases[str(case.get("name"))] = (outcome, "" if child is None else f"{child.get('message')}\n{child.text}")
    return cases


def test_a_test_blocked_after_a_failed_check_fails_naming_the_requirement(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.mark.requirement("DEMO-002", "DEMO-004")
def test_blocked(check):
    check("DEMO-002", False, expected="an id", actual="none", soft=True)
    pytest.skip("blocked by DEMO-002: the answer had no id")
    check("DEMO-004", True)
''')
    result = run(pytester, "--report-dir", "out", "-k", "blocked or four or one")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED test_demo.py::test_blocked - FAIL DEMO-002 (MUST)*"])
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-002)"
    out = pytester.path / "out"
    outcome, text = junit_cases(out)["test_blocked"]
    assert outcome == "failure" and "DEMO-002" in text and "blocked by DEMO-002: the answer had no id" in text
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["verdict"]["status"] == "NOT CONFORMANT" and results["exit_code"] == 1
    assert results["tests"] == {"failed": 1, "passed": 2} and results["errors"] == []


def test_a_fixture_that_fails_a_check_then_skips_fails_the_test(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.fixture
def bot(check):
    check("DEMO-004", False, expected="a bot id", actual="nothing", soft=True)
    pytest.skip("blocked by DEMO-004: no bot")


@pytest.mark.requirement("DEMO-004")
def test_needs_a_bot(bot):
    pass
''')
    result = run(pytester, "--report-dir", "out", "-k", "not four")
    assert result.ret == 1
    result.assert_outcomes(passed=2, errors=1)  # pytest's name for a failed setup
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-004)"
    outcome, text = junit_cases(pytester.path / "out")["test_needs_a_bot"]
    assert outcome == "error" and "FAIL DEMO-004 (MUST)" in text and "blocked by DEMO-004: no bot" in text


def test_a_crash_after_a_soft_failure_names_the_requirement(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.mark.requirement("DEMO-004")
def test_crash(check):
    check("DEMO-004", False, expected="x", actual="y", soft=True)
    raise RuntimeError("the burst could not be sent in time")
''')
    result = run(pytester, "--report-dir", "out", "-k", "not four")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED test_demo.py::test_crash - DEMO-004 failed; RuntimeError*"])
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-004); 1 error (test_demo.py::test_crash)"
    outcome, text = junit_cases(pytester.path / "out")["test_crash"]
    assert outcome == "failure" and "FAIL DEMO-004 (MUST)" in text and "Failed requirements" in text


def test_a_failure_recorded_in_teardown_fails_the_teardown(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.fixture
def cleanup(check):
    yield
    check("DEMO-004", False, expected="deleted", actual="still there", soft=True)


@pytest.mark.requirement("DEMO-004")
def test_cleans_up(cleanup, check):
    check("DEMO-004", True)
''')
    result = run(pytester, "--report-dir", "out", "-k", "not four")
    assert result.ret == 1
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-004)"
    outcome, text = junit_cases(pytester.path / "out")["test_cleans_up"]
    assert outcome == "error" and "DEMO-004 failed in teardown" in text


def test_a_strict_should_failure_before_a_skip_fails_the_test(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
@pytest.mark.requirement("DEMO-003")
def test_should_then_skip(check):
    check("DEMO-003", False, expected="a", actual="b")
    pytest.skip("nothing more to judge")
''')
    default = run(pytester, "-k", "should_then_skip")
    assert default.ret == 0
    default.assert_outcomes(skipped=1)
    strict = run(pytester, "-k", "should_then_skip", "-o", "strict=true")
    assert strict.ret == 1
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["FAILED test_demo.py::test_should_then_skip - FAIL DEMO-003 (SHOULD)*"])


HIDER = '''

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # A plugin outside the suite that turns a failed test into a passed one.
    report = yield
    if report.failed and "hidden" in item.name:
        report.outcome, report.longrepr = "passed", None
    return report
'''


@pytest.mark.slow
@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_a_failure_no_failed_test_shows_gets_a_failing_test_of_its_own(pytester: pytest.Pytester, xdist: tuple[str, ...]) -> None:
    make_suite(pytester, extra='''
@pytest.mark.requirement("DEMO-004")
def test_hidden(check):
    check("DEMO-004", False, expected="x", actual="y", soft=True)
''')
    pytester.makeconftest(HARNESS + HIDER)
    result = run(pytester, "--report-dir", "out", "-k", "not four", *xdist)
    assert result.ret == 1
    result.assert_outcomes(passed=3, failed=1)
    assert last_line(result) == "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-004)"
    out = pytester.path / "out"
    outcome, text = junit_cases(out)["requirements_failed_outside_a_failing_test"]
    assert outcome == "failure" and "DEMO-004 FAILed but no test that judged them ended failed" in text
    assert "test:     test_demo.py::test_hidden" in text
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["tests"] == {"failed": 1, "passed": 3} and results["errors"] == []


def test_pytest_exit_codes_2_and_5_pass_through(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    assert run(pytester, "-k", "no_such_test").ret == 5
    pytester.makepyfile(test_broken="def test_x(:\n")
    assert run(pytester).ret == 2


# --------------------------------------------------------------------------- runs: the baseline


def test_a_listed_failure_is_xfail_in_every_report_and_exits_0(pytester: pytest.Pytester) -> None:
    make_suite(pytester, fail4=True)
    base = baseline_file(pytester, requirement_entry("DEMO-004", "ISSUE-42 not fixed yet"))
    result = run(pytester, "--expected-failures", base, "--report-dir", "out", "-rx")
    assert result.ret == 0
    assert last_line(result) == "NOT CONFORMANT — 1 requirements fail, all baselined (DEMO-004)"
    result.stdout.fnmatch_lines(["XFAIL test_demo.py::test_four - baseline: requirement DEMO-004: ISSUE-42 not fixed yet"])
    out = pytester.path / "out"
    case = ET.parse(out / "junit.xml").find(".//testcase[@name='test_four']")
    assert case is not None and case.find("skipped").get("type") == "pytest.xfail"  # type: ignore[union-attr]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    demo4 = next(r for r in results["requirements"] if r["id"] == "DEMO-004")
    assert demo4["outcome"] == "XFAIL" and demo4["baseline_reasons"] == ["ISSUE-42 not fixed yet"]
    assert results["baseline"]["entries"] == [{"requirement": "DEMO-004", "reason": "ISSUE-42 not fixed yet", "status": "matched"}]
    allure = [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-result.json")]
    assert {r["name"]: r["status"] for r in allure}["test_four"] == "skipped"


def test_xfail_is_the_plugins_own_and_ignores_strict(pytester: pytest.Pytester) -> None:
    make_suite(pytester, fail4=True)
    base = baseline_file(pytester, requirement_entry("DEMO-004"))
    result = run(pytester, "--expected-failures", base, "-o", "strict=true", "-o", "xfail_strict=true")
    assert result.ret == 0
    result.assert_outcomes(passed=2, xfailed=1)


def test_a_stale_entry_fails_the_run_and_is_named(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    base = baseline_file(pytester, requirement_entry("DEMO-001", "flaky once"), requirement_entry("DEMO-004"))
    result = run(pytester, "--expected-failures", base, "-k", "not four")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "baseline *baseline.toml: 2 entries; 0 matched, 1 stale, 1 not run",
        "  STALE requirement DEMO-001 (flaky once): it ran and every check held; remove the entry",
    ])
    assert last_line(result) == "INCOMPLETE — 1 of 3 MUST requirements did not run (DEMO-004); 1 stale baseline entry"


def test_an_entry_that_did_not_run_is_neither_stale_nor_matched(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    base = baseline_file(pytester, requirement_entry("DEMO-004"))
    result = run(pytester, "--expected-failures", base, "-k", "not four", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["  not run requirement DEMO-004 (known)"])


def test_an_unknown_id_in_the_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    base = baseline_file(pytester, requirement_entry("DEMO-040"))
    result = run(pytester, "--expected-failures", base)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*entry 1: unknown requirement id 'DEMO-040' (did you mean DEMO-004?)*"])


# --------------------------------------------------------------------------- runs: reports


def read_reports(out: Path) -> dict[str, Any]:
    return {
        "junit": ET.parse(out / "junit.xml").getroot(),
        "html": (out / "report.html").read_text(encoding="utf-8"),
        "results": json.loads((out / "results.json").read_text(encoding="utf-8")),
        "allure": [json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "allure-results").glob("*-result.json"))],
    }


def test_one_run_writes_all_four_reports(pytester: pytest.Pytester) -> None:
    make_suite(pytester, fail2=True, warn3=True)
    result = run(pytester, "--report-dir", "out")
    out = pytester.path / "out"
    result.stdout.fnmatch_lines([f"reports in {out}: junit.xml (junit), report.html (html), allure-results/ (allure), results.json (results)"])
    reports = read_reports(out)
    line = "NOT CONFORMANT — 1 of 3 MUST requirements fail (DEMO-002); 1 SHOULD warning"

    # results.json: the certificate, valid against its committed schema.
    results = reports["results"]
    errors = [e.message for e in Draft202012Validator(report_schema("results")).iter_errors(results)]
    assert not errors
    assert results["verdict"]["line"] == line and results["exit_code"] == 1
    assert results["catalogue_sha256"] == "a" * 64 and results["spec_sha256"] == "b" * 64
    assert results["options"]["api_key"] == "<set>" and results["target"]["url"].startswith("http://127.0.0.1:")
    assert [(r["id"], r["outcome"]) for r in results["requirements"]] == [
        ("DEMO-001", "PASS"), ("DEMO-002", "FAIL"), ("DEMO-003", "WARN"), ("DEMO-004", "PASS"),
    ]
    assert results["tests"] == {"failed": 1, "passed": 2}

    # JUnit: the verdict as a suite property, requirement ids and levels per test.
    junit = reports["junit"]
    suite_props = {p.get("name"): p.get("value") for p in junit.iter("property") if p.get("name", "").startswith("conformance_")}
    assert suite_props["conformance_verdict"] == line and suite_props["conformance_exit_code"] == "1"
    case = junit.find(".//testcase[@name='test_two']")
    assert case is not None
    props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
    assert ("requirement", "DEMO-002") in props and ("requirement_level", "DEMO-002=MUST") in props
    assert ("requirement_level", "DEMO-003=SHOULD") in props and ("requirement_outcome", "DEMO-002=FAIL") in props

    # HTML: pytest-html's report with the certification summary and requirement table.
    page = reports["html"]
    assert "<h2>Certification</h2>" in page and line in page
    assert "Catalogue sha256" in page and "a" * 64 in page and "Requirements (4): 1 FAIL, 2 PASS, 1 WARN" in page
    assert 'data-column-type="requirements">Requirements</th>' in page

    # Allure: labels from the catalogue, attachments from the exchange log.
    allure = {r["name"]: r for r in reports["allure"]}
    labels = {(label["name"], label["value"]) for label in allure["test_two"]["labels"]}
    assert {("epic", "DEMO"), ("feature", "POST /v3/chat"), ("story", "DEMO-002"), ("story", "DEMO-003"), ("severity", "critical")} <= labels
    names = [a["name"] for a in allure["test_two"]["attachments"]]
    assert names[:5] == ["requirements", "1. POST /api/draftbot/create — request", "1. POST /api/draftbot/create — response",
                         "2. POST /v3/chat — request", "2. POST /v3/chat — response"]
    assert "Reproduce with (curl)" in names


def test_a_multi_step_failure_prints_requirement_quote_expected_actual_and_curl(pytester: pytest.Pytester) -> None:
    make_suite(pytester, fail2=True)
    result = run(pytester, "--report-dir", "out", "--show-capture=no")
    result.stdout.fnmatch_lines([
        "E  *RequirementFailed: DEMO-002 (MUST) failed: DEMO-002 is checked",
        "E  *spec: 「DEMO-002 的规范原文」",
        "E  *expected: 400",
        "E  *actual:   *",
        "*- Reproduce with -*",
        "#!/bin/sh",
        '*: "${COZE_API_KEY:?export COZE_API_KEY first}"',
        '*: "${COZE_SESSION_KEY:?export COZE_SESSION_KEY first}"',
        "# 1. POST /api/draftbot/create -> 200 *",
        "curl -sS -i *",
        '*-b "session_key=$COZE_SESSION_KEY"*',
        "# 2. POST /v3/chat -> 200 *",
        '*-H "Authorization: Bearer $COZE_API_KEY"*',
    ])
    failure = ET.parse(pytester.path / "out" / "junit.xml").getroot().find(".//testcase[@name='test_two']/failure")
    assert failure is not None and failure.text is not None
    assert "# 1. POST /api/draftbot/create" in failure.text and "Bearer $COZE_API_KEY" in failure.text
    assert failure.get("message", "").startswith("conformance.oracle.outcomes.RequirementFailed: DEMO-002 (MUST) failed")
    page = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert "# 2. POST /v3/chat" in page and "$COZE_API_KEY" in page


# --------------------------------------------------------------------------- runs: redaction

HYPOTHESIS_TEST = '''
from hypothesis import given, settings, strategies as st


@pytest.mark.requirement("DEMO-001")
@settings(database=None, max_examples=5)
@given(token=st.just(API_KEY))
def test_fuzzed(check, token):
    check("DEMO-001", token != API_KEY, expected="not the key", actual=token)
'''


@pytest.mark.slow
@pytest.mark.parametrize("xdist", [pytest.param((), id="in-process"), pytest.param(("-n", "2"), id="xdist")])
def test_no_secret_in_any_artifact(pytester: pytest.Pytester, xdist: tuple[str, ...]) -> None:
    make_suite(pytester, fail2=True, extra=HYPOTHESIS_TEST)
    result = run(pytester, "--report-dir", "out", "-vv", "--showlocals", "--tb=long", "-rA", *xdist)
    assert result.ret == 1
    redactor = Redactor({"COZE_API_KEY": API_KEY, "COZE_SESSION_KEY": SESSION_KEY})
    terminal = "\n".join(result.outlines + result.errlines)
    assert "***COZE_API_KEY***" in terminal  # the secret was there to leak, and was replaced
    assert not redactor.contains_secret(terminal)
    artifacts = [p for p in (pytester.path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in artifacts} >= {"junit.xml", "report.html", "results.json"}
    assert [p.name for p in artifacts if redactor.contains_secret(p.read_bytes())] == []
    forms = {API_KEY, json.dumps(API_KEY)[1:-1], quote(API_KEY, safe=""), quote_plus(API_KEY), html.escape(API_KEY), html.escape(json.dumps(API_KEY))}
    for form in forms:
        assert all(form.encode() not in p.read_bytes() for p in artifacts), form


def test_the_last_line_of_defence_redacts_files_written_by_others(pytester: pytest.Pytester) -> None:
    make_suite(pytester, extra='''
def test_leaks_through_a_property(record_property):
    record_property("token", API_KEY)  # straight into JUnit, past every report hook
''')
    run(pytester, "--report-dir", "out", "-o", "junit_family=xunit1")
    junit = (pytester.path / "out" / "junit.xml").read_text(encoding="utf-8")
    assert 'name="token" value="***COZE_API_KEY***"' in junit


def test_reports_go_where_the_user_said_when_given_explicitly(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    run(pytester, "--report-dir", "out", "--junitxml", "elsewhere/j.xml")
    assert (pytester.path / "elsewhere" / "j.xml").is_file() and not (pytester.path / "out" / "junit.xml").exists()
    results = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert results["reports"]["junit"] == str(pytester.path / "elsewhere" / "j.xml")


def test_without_report_dir_nothing_is_written(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = run(pytester)
    assert result.ret == 0
    assert {p.name for p in pytester.path.iterdir()} - {"__pycache__", ".hypothesis"} == {"conftest.py", "test_demo.py"}


def test_reports_not_wired_in_time_are_a_loud_error(pytester: pytest.Pytester) -> None:
    # A reporter registered after pytest-html and allure-pytest configured
    # themselves cannot point them at --report-dir: say so rather than write less.
    make_suite(pytester)
    conftest = pytester.path / "conftest.py"
    text = conftest.read_text(encoding="utf-8").replace("def pytest_configure(config):", "@pytest.hookimpl(trylast=True)\ndef pytest_configure(config):")
    conftest.write_text(text, encoding="utf-8")
    result = run(pytester, "--report-dir", "out")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*conformance --report-dir: JUnit XML, HTML (pytest-html), Allure (allure-pytest) not set up*"])


def test_results_schema_is_valid() -> None:
    Draft202012Validator.check_schema(report_schema("results"))


# --------------------------------------------------------------------------- end to end
#
# These run the real suite (``pytest --pyargs conformance``) against the reference
# server, with the rate-limit phase deselected (fast; the verdict then says
# INCOMPLETE). The chromium one needs ``chromium`` on PATH (Debian: apt-get install
# chromium; .ci/run installs it).

SUITE_ARGS: tuple[str, ...] = ("--pyargs", "conformance", "-p", "no:cacheprovider", "-m", "not ratelimit")
SPECIAL_API_KEY = 'e2e-ak"/+=%-0123456789'
SPECIAL_SESSION_KEY = "e2e-sk/+=%-0123456789"  # no '"': a cookie value cannot carry one unquoted
NARROW_FAULT = ("ts_ms_create", "BOT-CREATE-006")  # a reference-server fault that fails exactly one requirement


class _Target:
    """A reference server with known credentials (special characters included)."""

    def __init__(self, *faults: str) -> None:
        from conformance.reference import PrincipalConfig, ReferenceServer, ServerConfig

        self.server = ReferenceServer(ServerConfig(
            principals=(
                PrincipalConfig(name="p1", api_key=SPECIAL_API_KEY, session_key=SPECIAL_SESSION_KEY),
                PrincipalConfig(name="p2", api_key=SPECIAL_API_KEY + "-2", session_key=SPECIAL_SESSION_KEY + "-2"),
            ),
            rate_limits=False,
            faults=frozenset(faults),
        ))

    def __enter__(self) -> _Target:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return str(self.server.url)

    def env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in (("COZE_API_KEY", SPECIAL_API_KEY), ("COZE_SESSION_KEY", SPECIAL_SESSION_KEY),
                            ("COZE_API_KEY_2", SPECIAL_API_KEY + "-2"), ("COZE_SESSION_KEY_2", SPECIAL_SESSION_KEY + "-2")):
            monkeypatch.setenv(name, value)


@pytest.mark.slow
def test_one_run_writes_all_four_reports_without_a_secret(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    with _Target(NARROW_FAULT[0]) as target:
        target.env(monkeypatch)
        result = pytester.runpytest_subprocess(*SUITE_ARGS, "--target-url", target.url, "--report-dir", "out",
                                               "-n", "2", "-vv", "--showlocals", "--tb=long", "-rA")
    assert result.ret == 1
    out = pytester.path / "out"
    reports = read_reports(out)
    line = last_line(result)
    assert line.startswith("NOT CONFORMANT — ") and NARROW_FAULT[1] in line
    assert reports["results"]["verdict"]["line"] == line
    assert not list(Draft202012Validator(report_schema("results")).iter_errors(reports["results"]))
    assert {p.get("name"): p.get("value") for p in reports["junit"].iter("property")}["conformance_verdict"] == line
    assert "<h2>Certification</h2>" in reports["html"] and reports["allure"]
    redactor = Redactor({"COZE_API_KEY": SPECIAL_API_KEY, "COZE_SESSION_KEY": SPECIAL_SESSION_KEY})
    assert not redactor.contains_secret("\n".join(result.outlines + result.errlines))
    assert [p.name for p in out.rglob("*") if p.is_file() and redactor.contains_secret(p.read_bytes())] == []


@pytest.mark.slow
def test_a_failure_that_blocks_other_tests_is_a_failing_test_in_junit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # No ids in a chat's answer: CHAT-RESP-001 FAILs in the test that checks them,
    # which -- like every test continuing a conversation -- is then blocked by it.
    monkeypatch.setenv("COLUMNS", "400")  # the short summary line, uncut
    with _Target("chat_response_without_id") as target:
        target.env(monkeypatch)
        result = pytester.runpytest_subprocess(*SUITE_ARGS, "--target-url", target.url, "--report-dir", "out", "-n", "2",
                                               "--fuzz-examples", "3")
    assert result.ret == 1
    out = pytester.path / "out"
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert not list(Draft202012Validator(report_schema("results")).iter_errors(results))
    assert results["verdict"]["status"] == "NOT CONFORMANT" and results["verdict"]["failing"] == ["CHAT-RESP-001"]
    assert results["verdict"]["not_run"], "the blocked tests' requirements are still listed"
    assert results["exit_code"] == 1 and last_line(result) == results["verdict"]["line"]
    cases = junit_cases(out)
    failing = {name: text for name, (outcome, text) in cases.items() if outcome in ("failure", "error")}
    assert failing and all("CHAT-RESP-001" in text for text in failing.values()), failing
    assert any(outcome == "skipped" and "blocked by CHAT-RESP-001" in text for outcome, text in cases.values())
    # No test that recorded a FAIL ends anything but failed.
    failed_nodes = {t["nodeid"] for r in results["requirements"] for t in r["tests"] if t["outcome"] == "FAIL"}
    assert failed_nodes and {n.rsplit("::", 1)[-1] for n in failed_nodes} <= set(failing)
    result.stdout.fnmatch_lines(["FAILED *test_continuity.py::test_conversations_start_and_continue - FAIL CHAT-RESP-001*"])
    assert results["tests"]["failed"] == len(failing)


@pytest.mark.slow
def test_html_report_opens_in_headless_chromium(pytester: pytest.Pytester) -> None:
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert chromium, "chromium is needed for this test (apt-get install chromium)"
    result = pytester.runpytest_subprocess(*SUITE_ARGS, "--report-dir", "out")
    page = (pytester.path / "out" / "report.html").as_uri()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1800"]
    shot = pytester.path / "out" / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", page], check=True, capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = subprocess.run([*flags, "--dump-dom", page], check=True, capture_output=True, text=True, timeout=120).stdout
    # pytest-html renders its test table with JavaScript: the dumped DOM shows what a reader sees.
    assert "<h2>Certification</h2>" in dom and html.escape(last_line(result)) in dom
    assert 'class="col-requirements"' in dom and "Requirements (" in dom
    print(f"screenshot: {shot}")  # look at it


@pytest.mark.slow
def test_ci_gate_listed_fault_passes_unlisted_fault_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "examples" / "ci-gate.sh"
    fault, requirement = NARROW_FAULT
    listed = tmp_path / "baseline.toml"
    listed.write_text(f'[[expected]]\nrequirement = "{requirement}"\nreason = "the fault {fault} is on"\n', encoding="utf-8")
    monkeypatch.setenv("COZE_CONFORMANCE", f"{sys.executable} -m conformance.cli")
    monkeypatch.setenv("COZE_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.chdir(tmp_path)
    codes = []
    with _Target(fault) as target:
        target.env(monkeypatch)
        for baseline in ([str(listed)], []):
            done = subprocess.run([str(script), target.url, *baseline, "--", "-p", "no:cacheprovider", "-q", "-m", "not ratelimit", "--fuzz-examples", "3"],
                                  capture_output=True, text=True, timeout=600)
            codes.append(done.returncode)
            assert f"ci-gate: exit {done.returncode}" in done.stderr
    assert codes == [0, 1]
