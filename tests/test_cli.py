"""``coze-conformance``: argument handling, the three commands, the report-dir default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import conformance
from conformance import cli
from conformance.oracle.catalogue import load_catalogue
from conformance.oracle.openapi import build_openapi


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--version"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.strip() == f"coze-conformance {conformance.__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "the following arguments are required: COMMAND", id="no-command"),
        pytest.param(["certify"], "invalid choice: 'certify'", id="unknown-command"),
        pytest.param(["requirements", "--profile", "nope"], "unknown profile 'nope'; available: coze, doc", id="unknown-profile"),
        pytest.param(["export-openapi", "--format", "yaml"], "unrecognized arguments: --format yaml", id="unknown-option"),
    ],
)
def test_bad_usage_exits_4_like_the_suite(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 4
    assert message in capsys.readouterr().err


def test_requirements_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["requirements"]) == 0
    out = capsys.readouterr().out
    first = next(iter(load_catalogue().values()))
    assert first.id in out and f"{len(load_catalogue())} requirements" in out


def test_requirements_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["requirements", "--json", "--profile", "doc"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == list(load_catalogue().for_profile("doc"))
    assert set(rows[0]) >= {"id", "level", "area", "endpoint", "quote", "gloss", "profiles", "retired"}


def test_export_openapi_to_stdout_and_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export-openapi"]) == 0
    assert json.loads(capsys.readouterr().out) == build_openapi()
    target = tmp_path / "coze.openapi.json"
    assert cli.main(["export-openapi", "-o", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == build_openapi()
    assert f"wrote {target}" in capsys.readouterr().err


def test_export_openapi_writes_the_schemathesis_settings_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.oracle.openapi import SCHEMATHESIS_CONFIG

    document, settings = tmp_path / "openapi.json", tmp_path / "schemathesis.toml"
    assert cli.main(["export-openapi", "--profile", "doc", "-o", str(document), "--schemathesis-config", str(settings)]) == 0
    assert json.loads(document.read_text(encoding="utf-8")) == build_openapi("doc")
    assert settings.read_text(encoding="utf-8") == SCHEMATHESIS_CONFIG.read_text(encoding="utf-8")
    assert f"wrote {settings}" in capsys.readouterr().err


def test_export_openapi_to_an_unwritable_place_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export-openapi", "-o", str(tmp_path / "no" / "such" / "dir" / "x.json")]) == 4
    assert "cannot write" in capsys.readouterr().err


class FakePytest:
    """Records what ``run`` hands to pytest.main."""

    def __init__(self, ret: int) -> None:
        self.ret = ret
        self.calls: list[tuple[list[str], list[Any]]] = []

    def __call__(self, args: list[str], plugins: list[Any]) -> int:
        self.calls.append((args, plugins))
        return self.ret


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["run"], ["--pyargs", "conformance"], id="bare"),
        pytest.param(["run", "--target-url", "https://x.example", "-k", "chat", "-n", "2"],
                     ["--pyargs", "conformance", "--target-url", "https://x.example", "-k", "chat", "-n", "2"], id="pytest-args"),
        pytest.param(["run", "--help"], ["--pyargs", "conformance", "--help"], id="help-is-pytests"),
        pytest.param(["run", "requirements"], ["--pyargs", "conformance", "requirements"], id="nothing-after-run-is-a-command"),
    ],
)
def test_run_passes_everything_to_pytest_and_returns_its_code(monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: list[str]) -> None:
    fake = FakePytest(ret=3)
    monkeypatch.setattr(pytest, "main", fake)
    assert cli.main(argv) == 3
    ((args, plugins),) = fake.calls
    assert args == expected
    assert [type(p) for p in plugins] == [cli.DefaultReportDir]


# --------------------------------------------------------------------------- the report-dir default


def chosen(pytester: pytest.Pytester, *args: str, ini: str | None = None) -> tuple[Path | None, str]:
    pytester.makepyfile("def test_x():\n    pass\n")
    if ini is not None:
        pytester.makeini(f"[pytest]\ncoze_report_dir = {ini}\n")
    plugin = cli.DefaultReportDir("conformance-reports")
    result = pytester.runpytest("-p", "no:cacheprovider", *args, plugins=[plugin])
    assert result.ret == 0
    return plugin.chosen, result.stdout.str()


def test_run_defaults_the_report_dir_and_says_where(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COZE_REPORT_DIR", raising=False)
    where, out = chosen(pytester)
    assert where == pytester.path / "conformance-reports"
    assert f"coze-conformance: reports go to {where}" in out


@pytest.mark.parametrize(
    ("args", "env", "ini", "expected"),
    [
        pytest.param(("--report-dir", "cli-dir"), "env-dir", "ini-dir", "cli-dir", id="command-line"),
        pytest.param((), "env-dir", "ini-dir", "env-dir", id="environment"),
        pytest.param((), None, "ini-dir", "ini-dir", id="ini"),
    ],
)
def test_an_explicit_report_dir_wins(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], env: str | None, ini: str, expected: str
) -> None:
    if env is None:
        monkeypatch.delenv("COZE_REPORT_DIR", raising=False)
    else:
        monkeypatch.setenv("COZE_REPORT_DIR", env)
    where, _ = chosen(pytester, *args, ini=ini)
    assert where == pytester.path / expected
