"""The settings contract: precedence, error messages, exit codes, header, redaction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.keys import SUITE_DIR
from conformance.plugin import targets_suite
from conformance.settings import (
    OPTIONS,
    OPTIONS_BY_DEST,
    Settings,
    SettingsError,
    markdown_table,
    resolve_settings,
)

ROOT = Path(__file__).resolve().parent.parent

#: A valid value per option (as text), and a second one to tell sources apart.
VALID = {
    "target_url": ("http://127.0.0.1:1", "https://example.invalid/base"),
    "api_key": ("key-one", "key-two"),
    "session_key": ("sess-one", "sess-two"),
    "api_key_2": ("key2-one", "key2-two"),
    "session_key_2": ("sess2-one", "sess2-two"),
    "bot_id": ("7351234567890123456", "7351234567890123457"),
    "model": ("gpt-4", "other-model"),
    "request_timeout": ("12", "13.5"),
    "stream_timeout": ("40", "41"),
    "report_dir": ("out-a", "out-b"),
    "fuzz_examples": ("3", "4"),
    "headers": ("X-Gateway: one", "X-Gateway: two"),
    "requirements": ("CHAT-*", "BOT-*"),
    "rate_budgets": ("chat=30", "info=50"),
    "rate_window": ("2", "5.5"),
}

#: An invalid value per option that validates its input.
INVALID = {
    "target_url": "foo",
    "api_key": " padded ",
    "bot_id": "12ab",
    "request_timeout": "-1",
    "stream_timeout": "zero",
    "fuzz_examples": "-3",
    "headers": "no colon here",
    "profile": "nonesuch",
    "expected_failures": "/no/such/baseline.toml",
    "ca_bundle": "/no/such/bundle.pem",
    "rate_budgets": "tea=3",
    "rate_window": "0",
}

# Credentials that must accompany a target so that combinations stay valid.
BASE_ENV = {"COZE_TARGET_URL": "http://127.0.0.1:1", "COZE_API_KEY": "base-key"}


def _config(pytester: pytest.Pytester, *args: str, ini: dict[str, str] | None = None) -> pytest.Config:
    if ini:
        body = "\n".join(f"{k} = {v!r}" if "\n" not in v else f'{k} = """{v}"""' for k, v in ini.items())
        pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\n{body}\n")
    return pytester.parseconfig(*args)


def _typed(dest: str, text: str) -> object:
    opt = OPTIONS_BY_DEST[dest]
    return (opt.parse(text),) if opt.multiple else opt.parse(text)


PRECEDENCE = [o for o in OPTIONS if o.dest in VALID and o.env]


@pytest.mark.parametrize("opt", PRECEDENCE, ids=[o.flag for o in PRECEDENCE])
def test_cli_beats_environment_beats_ini(pytester: pytest.Pytester, opt) -> None:
    first, second = VALID[opt.dest]
    env = dict(BASE_ENV)
    env[opt.env] = second
    if opt.dest == "api_key_2":
        env["COZE_API_KEY"] = "different"
    config = _config(pytester, opt.flag, first, ini={opt.ini: second} if opt.ini else None)
    settings = resolve_settings(config, env)
    assert getattr(settings, opt.dest) == _typed(opt.dest, first)
    assert settings.sources[opt.dest] == "command line"

    settings = resolve_settings(_config(pytester), env)
    assert getattr(settings, opt.dest) == _typed(opt.dest, second)
    assert settings.sources[opt.dest] == opt.env


INI_OPTIONS = [o for o in OPTIONS if o.dest in VALID and o.ini]


@pytest.mark.parametrize("opt", INI_OPTIONS, ids=[o.flag for o in INI_OPTIONS])
def test_ini_beats_default(pytester: pytest.Pytester, opt) -> None:
    value = VALID[opt.dest][1]
    env = {k: v for k, v in BASE_ENV.items() if k != opt.env}
    settings = resolve_settings(_config(pytester, ini={opt.ini: value}), env)
    assert getattr(settings, opt.dest) == _typed(opt.dest, value)
    assert settings.sources[opt.dest].startswith(f"ini {opt.ini}")


def test_defaults(pytester: pytest.Pytester) -> None:
    settings = resolve_settings(_config(pytester), {})
    assert (settings.target_url, settings.profile, settings.request_timeout, settings.stream_timeout) == (
        None,
        "doc",
        30.0,
        60.0,
    )
    assert settings.strict is False and settings.headers == () and settings.sources["profile"] == "default"


BAD = [
    pytest.param(opt, source, id=f"{opt.flag}-{source}")
    for opt in OPTIONS
    if opt.dest in INVALID
    for source in ("cli", "env", "ini")
    if source != "ini" or opt.ini  # secrets have no ini key: they never live in a committed file
]


@pytest.mark.parametrize(("opt", "source"), BAD)
def test_bad_value_names_option_value_and_source(pytester: pytest.Pytester, opt, source: str) -> None:
    bad = INVALID[opt.dest]
    env = dict(BASE_ENV)
    args: list[str] = []
    ini = None
    if source == "cli":
        args = [opt.flag, bad]
    elif source == "env":
        env[opt.env] = bad
    else:
        ini = {opt.ini: bad}
        env.pop(opt.env, None)
    with pytest.raises(SettingsError) as excinfo:
        resolve_settings(_config(pytester, *args, ini=ini), env)
    message = str(excinfo.value)
    expected_source = {"cli": "command line", "env": opt.env, "ini": f"ini {opt.ini}"}[source]
    assert message.startswith(f"invalid {opt.flag} ")
    assert f"(from {expected_source}" in message
    if opt.secret:
        assert bad.strip() not in message, "a secret value must never be echoed"
    else:
        assert repr(bad) in message


def test_the_issue_example_message(pytester: pytest.Pytester) -> None:
    with pytest.raises(SettingsError, match=re.escape("invalid --target-url 'foo' (from COZE_TARGET_URL)")):
        resolve_settings(_config(pytester), {"COZE_TARGET_URL": "foo", "COZE_API_KEY": "k"})


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        pytest.param({"COZE_TARGET_URL": "http://127.0.0.1:1"}, "needs a credential", id="target-without-credential"),
        pytest.param({"COZE_API_KEY": "k"}, "--api-key (from COZE_API_KEY) needs --target-url", id="key-without-target"),
        pytest.param(
            {**BASE_ENV, "COZE_API_KEY_2": "base-key"}, "the second principal must differ", id="same-principal"
        ),
        pytest.param({**BASE_ENV, "COZE_INSECURE": "1", "COZE_CA_BUNDLE": __file__}, "contradict", id="tls"),
        pytest.param(
            {"COZE_TARGET_URL": "http://user:pa55word@127.0.0.1:1", "COZE_API_KEY": "k"},
            "invalid --target-url 'http://***@127.0.0.1:1' (from COZE_TARGET_URL): the base URL must not carry",
            id="userinfo-never-shown",
        ),
        pytest.param({"COZE_STRICT": "maybe"}, "invalid COZE_STRICT 'maybe'", id="strict-env"),
        pytest.param({**BASE_ENV, "COZE_INSECURE": "perhaps"}, "invalid --insecure 'perhaps'", id="bool-env"),
    ],
)
def test_bad_combinations(pytester: pytest.Pytester, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(fragment)):
        resolve_settings(_config(pytester), env)


def test_strict_is_pytests_own_flag(pytester: pytest.Pytester) -> None:
    assert resolve_settings(_config(pytester), {}).strict is False
    assert resolve_settings(_config(pytester, "--strict"), {}).strict is True
    assert resolve_settings(_config(pytester), {"COZE_STRICT": "1"}).strict is True
    assert resolve_settings(_config(pytester, ini={"strict": "true"}), {}).strict is True


def test_headers_from_env_split_on_newlines(pytester: pytest.Pytester) -> None:
    env = {**BASE_ENV, "COZE_HEADERS": "X-A: 1\nX-B: two, three"}
    assert resolve_settings(_config(pytester), env).headers == (("X-A", "1"), ("X-B", "two, three"))


SECRETS = ['a"b/c+d=e%f', "s%2Fk+=/\"'<&>", "plain-but-long-secret"]


def test_settings_repr_never_shows_secrets() -> None:
    settings = Settings(
        target_url="http://x",
        api_key=SECRETS[0],
        session_key=SECRETS[1],
        api_key_2=SECRETS[2],
        headers=(("X-Token", "gateway-secret-value"),),
    )
    for text in (repr(settings), str(settings), settings.header_line()):
        for secret in [*SECRETS, "gateway-secret-value"]:
            assert secret not in text
    assert "api_key=<set>" in repr(settings) and "session_key_2=None" in repr(settings)
    assert settings.secrets["COZE_API_KEY"] == SECRETS[0]


def test_header_line_names_target_profile_auth_and_strictness() -> None:
    line = Settings(target_url="http://t", api_key="k", session_key="s", strict=True).header_line()
    assert line == (
        "conformance: target http://t; profile doc; auth principal 1: bearer+cookie, "
        "principal 2: not configured; strict: yes (SHOULD requirements fail); timeouts: request 30 s, stream 60 s"
    )


def test_worker_round_trip() -> None:
    settings = Settings(target_url="http://t", api_key="k", headers=(("A", "b"),), requirements=("X*",))
    assert Settings.from_worker(settings.to_worker()) == settings


def test_readme_table_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate the table: python -m conformance.settings"


# ----------------------------------------------------------------- through pytest itself


def test_exit_code_4_on_a_bad_setting(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(str(SUITE_DIR), "--request-timeout", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid --request-timeout '-1' (from command line)*"])


def test_exit_code_4_on_a_target_without_credentials(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("COZE_TARGET_URL", "http://127.0.0.1:9")
    for name in ("COZE_API_KEY", "COZE_SESSION_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = pytester.runpytest(str(SUITE_DIR))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*(from COZE_TARGET_URL) needs a credential*"])


def test_plugin_is_inert_outside_the_suite(pytester: pytest.Pytester, monkeypatch) -> None:
    """A run of other tests neither validates settings nor starts anything."""
    monkeypatch.setenv("COZE_TARGET_URL", "not a url")
    pytester.makepyfile("def test_x():\n    assert True\n")
    result = pytester.runpytest()
    assert result.ret == 0
    assert "conformance:" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param([str(SUITE_DIR)], True, id="suite-dir"),
        pytest.param([str(SUITE_DIR.parent)], True, id="package-dir"),
        pytest.param(["--pyargs", "conformance"], True, id="pyargs"),
        pytest.param([str(ROOT / "tests")], False, id="project-tests"),
        pytest.param(["--pyargs", "json"], False, id="other-package"),
    ],
)
def test_targets_suite(pytester: pytest.Pytester, args: list[str], expected: bool) -> None:
    assert targets_suite(pytester.parseconfig(*args)) is expected
