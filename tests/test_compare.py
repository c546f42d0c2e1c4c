"""Regressions between two runs: ``coze-conformance compare OLD NEW`` and ``--compare-to``.

The end-to-end tests compare real certificates: the suite's results.json of small runs
(one test, ``test_bot_lifecycle``) against the reference server, once clean and once
with the fault ``ts_ms_create`` switched on, which breaks exactly BOT-CREATE-006. The
unit tests pin what counts as worse on tables of outcomes and verdicts.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from conformance import cli
from conformance.keys import SUITE_DIR
from conformance.reporting.baseline import report_schema
from conformance.reporting.compare import Kind, ResultsError, compare, format_markdown, format_text, load_results
from tests.support.against import ROOT, serve

FAULT, REQUIREMENT = "ts_ms_create", "BOT-CREATE-006"  # a reference-server fault that fails exactly one requirement
# One test, no rate pacing (the server's limits are off): each run takes a few seconds.
SMALL_RUN = (
    "-k", "test_bot_lifecycle", "-p", "no:cacheprovider", "-q",
    "--rate-budget", "chat=100000", "--rate-budget", "management=100000", "--rate-budget", "info=100000",
)


def run_suite(
    report_dir: Path, *args: str, faults: frozenset[str] = frozenset(), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``pytest conformance`` in a subprocess against a fresh reference server, writing
    its reports into ``report_dir``; no COZE_* variable of this process leaks in."""
    with serve("reference", {"faults": faults, "rate_limits": False}) as target:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("COZE_")}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "conformance", *SMALL_RUN, "--report-dir", str(report_dir), *args],
            cwd=ROOT, env={**clean, **target.env(), **(env or {})}, capture_output=True, text=True, timeout=120, check=False,
        )


def compare_cli(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@dataclass(frozen=True)
class Run:
    """One finished run: its results.json, exit code and terminal output."""

    results: Path
    returncode: int
    stdout: str


def shared_run(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str, **kwargs: Any) -> Run:
    """``run_suite`` once per session, whatever the number of xdist workers (the
    pytest-xdist recipe: a folder shared by the workers, and a lock)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "test-compare-runs"
    shared.mkdir(exist_ok=True)
    folder = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (folder / "done.json").is_file():
            done = run_suite(folder, *args, **kwargs)
            (folder / "done.json").write_text(json.dumps([done.returncode, done.stdout + done.stderr]), encoding="utf-8")
    returncode, output = json.loads((folder / "done.json").read_text(encoding="utf-8"))
    return Run(folder / "results.json", returncode, output)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results.json of a clean run: BOT-CREATE-006 PASSes."""
    run = shared_run(tmp_path_factory, "clean")
    assert run.returncode == 0, run.stdout
    return run.results


@pytest.fixture(scope="module")
def faulty(clean: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A run with the fault on, compared to the clean one (--compare-to)."""
    return shared_run(tmp_path_factory, "faulty", "--compare-to", str(clean), faults=frozenset({FAULT}))


@pytest.fixture(scope="module")
def richer(clean: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean run's results.json with one MUST requirement that did not run made a PASS."""
    document = load_results(clean)
    entry = next(r for r in document["requirements"] if r["outcome"] == "NOT RUN" and r["level"] == "MUST")
    entry["outcome"] = "PASS"
    path = tmp_path_factory.getbasetemp().parent / "test-compare-runs" / "richer.json"
    path.write_text(json.dumps(document), encoding="utf-8")  # the same content from every worker
    return path


@pytest.fixture(scope="module")
def clean_again(richer: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A second clean run, compared (COZE_COMPARE_TO) to ``richer``: coverage lost,
    while this run itself has no failure."""
    return shared_run(tmp_path_factory, "clean-again", env={"COZE_COMPARE_TO": str(richer)})


# --------------------------------------------------------------------------- the command, on real certificates


@pytest.mark.slow
def test_clean_to_faulty_exits_1_and_names_the_regression(clean: Path, faulty: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = compare_cli(clean, faulty.results, capsys=capsys)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"OLD {clean}: suite ") and ", profile doc, target http://127.0.0.1:" in lines[0]
    assert lines[1].strip().startswith("INCOMPLETE — ") and lines[3].strip().startswith("NOT CONFORMANT — ")
    assert "verdict: INCOMPLETE -> NOT CONFORMANT (worse)" in lines
    regressed = lines.index(next(line for line in lines if line.startswith("Regressed (1)")))
    assert lines[regressed + 1].split() == [REQUIREMENT, "MUST", "PASS", "->", "FAIL"]
    assert lines[-1].startswith(f"REGRESSED — 1 requirement regressed ({REQUIREMENT})")
    assert not any(line.startswith(("Fixed", "Coverage lost")) for line in lines)


@pytest.mark.slow
def test_faulty_to_clean_exits_0_and_lists_the_fix(clean: Path, faulty: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = compare_cli(faulty.results, clean, capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    fixed = lines.index(next(line for line in lines if line.startswith("Fixed (1)")))
    assert lines[fixed + 1].split() == [REQUIREMENT, "MUST", "FAIL", "->", "PASS"]
    assert lines[-1].startswith(f"NO REGRESSION — 1 requirement fixed ({REQUIREMENT}); verdict better")


@pytest.mark.slow
def test_clean_to_clean_exits_0_with_nothing_changed(clean: Path, clean_again: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = compare_cli(clean, clean_again.results, capsys=capsys)
    assert code == 0
    # Two runs, two servers: only the target's port differs, and the note says so.
    assert out.splitlines()[-1].startswith("NO REGRESSION — no requirement changed (")
    assert any(line.startswith("note: the targets differ") for line in out.splitlines())


@pytest.mark.slow
def test_json_and_markdown_say_the_same(clean: Path, faulty: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = compare_cli(clean, faulty.results, "--format", "json", capsys=capsys)
    document = json.loads(out)
    assert code == 1 and document["regressed"] is True and document["verdict_change"] == "worse"
    assert document["changes"] == [{"id": REQUIREMENT, "level": "MUST", "old": "PASS", "new": "FAIL", "kind": "regressed"}]
    assert (document["old"]["path"], document["new"]["path"]) == (str(clean), str(faulty.results))
    assert document["old"]["profile"] == document["new"]["profile"] == "doc"
    code, out, _ = compare_cli(clean, faulty.results, "--format", "markdown", capsys=capsys)
    assert code == 1 and "### Regressed (1)" in out and f"| `{REQUIREMENT}` | MUST | PASS | FAIL |" in out
    assert f"**REGRESSED — 1 requirement regressed ({REQUIREMENT})" in out


@pytest.mark.slow
def test_runs_of_different_profiles_are_refused_unless_allowed(
    clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = load_results(clean)
    other["profile"] = "coze"
    path = tmp_path / "coze.json"
    path.write_text(json.dumps(other), encoding="utf-8")
    code, out, err = compare_cli(clean, path, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "different profiles (doc and coze)" in err and "--allow-profile-change" in err
    code, out, _ = compare_cli(clean, path, "--allow-profile-change", capsys=capsys)
    assert code == 0 and "note: the runs are of different profiles (doc and coze)" in out


# --------------------------------------------------------------------------- --compare-to in a run


@pytest.mark.slow
def test_compare_to_puts_the_comparison_in_the_html_terminal_and_results(clean: Path, faulty: Run) -> None:
    path, done = faulty.results, faulty
    assert done.returncode == 1, done.stdout  # the run's own: NOT CONFORMANT
    results = json.loads(path.read_text(encoding="utf-8"))
    assert not list(Draft202012Validator(report_schema("results")).iter_errors(results))
    comparison = results["comparison"]
    assert comparison["regressed"] is True and comparison["old"]["path"] == str(clean.resolve())
    assert comparison["new"]["path"] == str(path.resolve()) and [c["id"] for c in comparison["changes"]] == [REQUIREMENT]
    assert "conformance: compared to an earlier run" in done.stdout
    assert f"REGRESSED — 1 requirement regressed ({REQUIREMENT})" in done.stdout
    page = (path.parent / "report.html").read_text(encoding="utf-8")
    section = page[page.index('<div class="conformance-comparison">'):]
    section = section[: section.index("</div>")]
    assert "<h2>Compared to an earlier run</h2>" in section and "Regressed (1)" in section
    assert f"<code>{REQUIREMENT}</code>" in section and "<td" in section and "PASS" in section and "FAIL" in section


@pytest.mark.slow
def test_compare_to_leaves_the_exit_code_to_the_run(clean_again: Run) -> None:
    done = clean_again
    results = json.loads(done.results.read_text(encoding="utf-8"))
    assert done.returncode == 0 == results["exit_code"], done.stdout
    assert results["option_sources"]["compare_to"] == "COZE_COMPARE_TO"
    comparison = results["comparison"]
    assert comparison["regressed"] is True and comparison["counts"]["coverage lost"] == 1
    assert "Coverage lost (1): judged in OLD, not judged in NEW" in done.stdout


@pytest.mark.slow
def test_a_run_without_compare_to_has_a_null_comparison(clean: Path) -> None:
    results = json.loads(clean.read_text(encoding="utf-8"))
    assert results["format_version"] == 2 and results["comparison"] is None
    assert not list(Draft202012Validator(report_schema("results")).iter_errors(results))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read it: No such file or directory", id="missing"),
        pytest.param(b'{"format_version": ', "not JSON (Expecting value at line 1, column 20)", id="not-json"),
        pytest.param(b"[]", "not a results.json: the top level is an array, not an object", id="array"),
    ],
)
def test_compare_to_an_unreadable_file_is_a_usage_error(
    pytester: pytest.Pytester, content: bytes | None, message: str
) -> None:
    bad = pytester.path / "old.json"
    if content is not None:
        bad.write_bytes(content)
    result = pytester.runpytest(str(SUITE_DIR), "--compare-to", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*invalid --compare-to '{bad}' (from command line): {message}*"])


# --------------------------------------------------------------------------- bad input: exit 2, one line


def certificate(**changes: Any) -> dict[str, Any]:
    """A minimal results.json, as much as a comparison reads."""
    document: dict[str, Any] = {
        "format_version": 2,
        "suite": {"name": "coze-plus-conformance", "version": "0.1.0", "commit": None, "dirty": None},
        "catalogue_sha256": "a" * 64,
        "profile": "doc",
        "strict": False,
        "target": {"url": "http://127.0.0.1:1", "embedded": True, "server_headers": None},
        "verdict": {"status": "CONFORMANT", "line": "CONFORMANT — all 2 MUST requirements pass", "failing": [], "failing_other": []},
        "exit_code": 0,
        "requirements": [{"id": "M-001", "level": "MUST", "outcome": "PASS"}, {"id": "M-002", "level": "MUST", "outcome": "PASS"}],
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = document
        for name in parents:
            target = target[name] if not name.isdigit() else target[int(name)]
        if value is _DROP:
            del target[last]
        else:
            target[last] = value
    return document


_DROP = object()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(None, "cannot read it: No such file or directory", id="missing"),
        pytest.param(b"", "not JSON (Expecting value at line 1, column 1)", id="empty"),
        pytest.param(b"\xff\xfe{}", "not UTF-8 text, so not a results.json", id="not-utf8"),
        pytest.param(b"<html></html>", "not JSON (Expecting value at line 1, column 1)", id="html"),
        pytest.param(b'"results"', "not a results.json: the top level is a string, not an object", id="string"),
        pytest.param(certificate(format_version=_DROP), "not a results.json of coze-plus-conformance: no format_version", id="no-version"),
        pytest.param(certificate(format_version=99), "format_version 99 is not one this suite reads (1 or 2)", id="future-version"),
        pytest.param(certificate(requirements={}), "requirements: expected an array, found an object", id="requirements-object"),
        pytest.param(certificate(verdict=_DROP), "verdict: expected an object, found nothing", id="no-verdict"),
        pytest.param(certificate(suite__version=1), "suite.version: expected a string, found a number", id="version-number"),
        pytest.param(certificate(verdict__status="FINE"), "verdict.status: 'FINE' is not one of CONFORMANT, INCOMPLETE", id="status"),
        pytest.param(certificate(requirements__1__outcome="OK"), "requirements[1].outcome (M-002): 'OK' is not one of PASS", id="outcome"),
        pytest.param(certificate(requirements__0__id=""), "requirements[0].id: empty", id="empty-id"),
        pytest.param(certificate(requirements__1__id="M-001"), "requirements[1]: M-001 is listed twice", id="duplicate"),
    ],
)
@pytest.mark.parametrize("side", ["old", "new"])
def test_bad_input_exits_2_with_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, problem: str, side: str
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(certificate()), encoding="utf-8")
    if isinstance(content, dict):
        bad.write_text(json.dumps(content), encoding="utf-8")
    elif content is not None:
        bad.write_bytes(content)
    code, out, err = compare_cli(*((bad, good) if side == "old" else (good, bad)), capsys=capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"coze-conformance compare: {bad}: {problem}") and err.count("\n") == 1, err


def test_a_directory_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = compare_cli(tmp_path, tmp_path, capsys=capsys)
    assert code == 2 and err == f"coze-conformance compare: {tmp_path}: cannot read it: Is a directory\n"


def test_the_console_script_exits_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text("{", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(bad), str(bad)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"coze-conformance compare: {bad}: not JSON (Expecting property name enclosed in double quotes at line 1, column 2)\n"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["compare"], id="no-files"),
        pytest.param(["compare", "a.json"], id="one-file"),
        pytest.param(["compare", "a.json", "b.json", "--format", "html"], id="unknown-format"),
    ],
)
def test_bad_usage_of_compare_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2 and "coze-conformance compare: error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- what counts as worse


def _with(outcomes: dict[str, str], status: str = "CONFORMANT", **verdict: Any) -> dict[str, Any]:
    return certificate(
        requirements=[{"id": rid, "level": "MUST", "outcome": o} for rid, o in outcomes.items()],
        verdict={"status": status, "line": f"{status} — …", **verdict},
    )


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        pytest.param("PASS", "FAIL", Kind.REGRESSED, id="pass-fail"),
        pytest.param("PASS", "WARN", Kind.REGRESSED, id="pass-warn"),
        pytest.param("WARN", "FAIL", Kind.REGRESSED, id="warn-fail"),
        pytest.param("PASS", "XFAIL", Kind.REGRESSED, id="pass-xfail"),
        pytest.param("PASS", "SKIP", Kind.COVERAGE_LOST, id="pass-skip"),
        pytest.param("PASS", "NOT RUN", Kind.COVERAGE_LOST, id="pass-not-run"),
        pytest.param("FAIL", "NOT RUN", Kind.COVERAGE_LOST, id="fail-not-run"),
        pytest.param("FAIL", "PASS", Kind.FIXED, id="fail-pass"),
        pytest.param("WARN", "PASS", Kind.FIXED, id="warn-pass"),
        pytest.param("FAIL", "WARN", Kind.IMPROVED, id="fail-warn"),
        pytest.param("SKIP", "FAIL", Kind.NEWLY_JUDGED, id="skip-fail"),
        pytest.param("NOT RUN", "PASS", Kind.NEWLY_JUDGED, id="not-run-pass"),
        pytest.param("FAIL", "XFAIL", Kind.CHANGED, id="fail-xfail"),
        pytest.param("SKIP", "NOT RUN", Kind.CHANGED, id="skip-not-run"),
        pytest.param("PASS", None, Kind.ONLY_OLD, id="only-old"),
        pytest.param(None, "FAIL", Kind.ONLY_NEW, id="only-new"),
        pytest.param("PASS", "PASS", None, id="same"),
    ],
)
def test_each_change_has_its_kind(old: str | None, new: str | None, kind: Kind | None) -> None:
    before = _with({"M-001": "PASS"} | ({"X-001": old} if old else {}))
    after = _with({"M-001": "PASS"} | ({"X-001": new} if new else {}))
    comparison = compare(before, after)
    assert [c.kind for c in comparison.changes] == ([] if kind is None else [kind])
    assert comparison.unchanged == (2 if kind is None else 1)
    assert comparison.regressed is (kind in (Kind.REGRESSED, Kind.COVERAGE_LOST))


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        pytest.param(("CONFORMANT", {}), ("INCOMPLETE", {}), "worse", id="conformant-incomplete"),
        pytest.param(("INCOMPLETE", {}), ("INCONCLUSIVE", {}), "worse", id="incomplete-inconclusive"),
        pytest.param(("INCONCLUSIVE", {}), ("NOT CONFORMANT", {"failing": ["M-001"]}), "worse", id="inconclusive-failing"),
        pytest.param(("NOT CONFORMANT", {"baselined": ["M-001"]}), ("INCOMPLETE", {}), "worse", id="baselined-incomplete"),
        pytest.param(("CONFORMANT", {}), ("NOT CONFORMANT", {"baselined": ["M-001"]}), "worse", id="conformant-baselined"),
        pytest.param(("NOT CONFORMANT", {"failing": ["M-001"]}), ("CONFORMANT", {}), "better", id="failing-conformant"),
        pytest.param(("INCOMPLETE", {}), ("INCOMPLETE", {}), "same", id="same"),
    ],
)
def test_a_worse_verdict_is_a_regression_by_itself(old: tuple[str, dict[str, Any]], new: tuple[str, dict[str, Any]], change: str) -> None:
    comparison = compare(_with({"M-001": "PASS"}, old[0], **old[1]), _with({"M-001": "PASS"}, new[0], **new[1]))
    assert comparison.verdict_change == change and comparison.regressed is (change == "worse")
    assert format_text(comparison).splitlines()[-1].startswith("REGRESSED — " if change == "worse" else "NO REGRESSION — ")


def test_the_text_explains_coverage_lost_and_what_only_one_run_lists() -> None:
    comparison = compare(
        _with({"M-001": "PASS", "M-002": "PASS", "OLD-001": "PASS"}),
        _with({"M-001": "SKIP", "M-002": "PASS", "NEW-001": "FAIL"}),
    )
    text = format_text(comparison)
    assert "Coverage lost (1): judged in OLD, not judged in NEW (SKIP or NOT RUN): a regression" in text
    assert "Only in OLD (1): not in NEW's requirement list" in text and "  OLD-001  MUST    PASS -> (absent)" in text
    assert "  NEW-001  MUST    (absent) -> FAIL" in text
    assert [c.id for c in comparison.regressions] == ["M-001"]
    assert "| `OLD-001` | MUST | PASS | (absent) |" in format_markdown(comparison)


def test_the_suites_and_strictness_are_noted() -> None:
    old = _with({"M-001": "PASS"})
    new = copy.deepcopy(old)
    new["suite"]["version"], new["strict"] = "0.2.0", True
    notes = compare(old, new).notes
    assert any(n.startswith("the suites differ") for n in notes) and any("--strict" in n for n in notes)
    assert compare(old, copy.deepcopy(old)).notes == ()


def test_load_results_raises_a_value_error_with_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ResultsError) as excinfo:
        load_results(path)
    assert isinstance(excinfo.value, ValueError) and excinfo.value.problem.startswith("not a results.json")
    assert str(excinfo.value) == f"{path}: {excinfo.value.problem}"
