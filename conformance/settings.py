"""The suite's settings: one table of options, one function that resolves them.

Every option resolves the same way -- command line > environment variable > ini key >
default -- and a bad value is a usage error that names the option, the value and where
it came from (the habit of pytest-timeout and pytest_httpx). The names are a public
contract: the README's option table is generated from ``OPTIONS`` (``python -m
conformance.settings``) and a test keeps the two equal.

Strictness is pytest's own ``--strict`` flag (pytest >= 9) or ``strict = true`` in the
ini, read through ``config.getini("strict")``; the suite never registers it again.
``COZE_STRICT=1`` turns it on from the environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

#: Where a value came from, as shown in error messages and the report header.
CLI = "command line"
DEFAULT = "default"


class SettingsError(pytest.UsageError):  # type: ignore[misc]  # pytest marks it final; subclassing keeps exit code 4
    """A bad option value; pytest turns it into exit code 4."""


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("the base URL must not carry a query or a fragment")
    if parts.username is not None or parts.password is not None:
        # httpx would turn user:password@ into Basic auth over the suite's own headers.
        raise ValueError("the base URL must not carry user:password@; use --api-key / --session-key")
    try:
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    return value.rstrip("/")


def _secret(value: str) -> str:
    if not value or value != value.strip() or any(c in value for c in "\r\n"):
        raise ValueError("expected a non-empty value without surrounding blanks or line breaks")
    return value


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return seconds


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("expected a whole number >= 0")
    return number


def _dialect(value: str) -> str:
    # The reference server's dialects: those the profiles name (it never imports them).
    known = ("coze", "doc")
    if value not in known:
        raise ValueError(f"unknown dialect; available: {', '.join(known)}")
    return value


def _digits(value: str) -> str:
    # Ids exceed 2**53 (READING "Id types"): kept as text, never through a float.
    if not value.isascii() or not value.isdigit():
        raise ValueError("expected a decimal id (digits only)")
    return value


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def _existing_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError("no such file")
    return value


def _results_file(value: str) -> str:
    # Read now, so that a bad file is a usage error before the run, not after it.
    from conformance.reporting.compare import ResultsError, load_results

    try:
        load_results(value)
    except ResultsError as exc:
        raise ValueError(exc.problem) from None
    return value


def _header(value: str) -> tuple[str, str]:
    name, sep, text = value.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or any(c in text for c in "\r\n"):
        raise ValueError("expected 'Name: value'")
    return name, text.strip()


def _group_count(value: str, noun: str) -> tuple[str, int]:
    group, sep, number = value.partition("=")
    group = group.strip()
    if not sep or group not in ("chat", "management", "info"):
        raise ValueError("expected GROUP=N with GROUP one of chat, management, info")
    requests = int(number)
    if requests < 1:
        raise ValueError(f"expected a {noun} of at least 1 request per window")
    return group, requests


def _budget(value: str) -> tuple[str, int]:
    return _group_count(value, "budget")


def _rate_limit(value: str) -> tuple[str, int]:
    return _group_count(value, "limit")


def _profile(value: str) -> str:
    # Profiles are data files beside profile.py; the name only finds the file.
    folder = Path(__file__).resolve().parent / "oracle" / "profiles"
    known = sorted(p.stem for p in folder.glob("*.toml"))
    if value not in known:
        raise ValueError(f"unknown profile; available: {', '.join(known)}")
    return value


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable, ini key, parser and help."""

    flag: str
    dest: str
    help: str
    env: str | None = None
    ini: str | None = None
    default: Any = None
    parse: Callable[[str], Any] = str
    secret: bool = False
    multiple: bool = False  # repeatable flag; env and ini values are newline/comma lists
    flag_only: bool = False  # a store_true switch
    metavar: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option("--target-url", "target_url", "Base URL of the server under test; absent: the embedded reference server.",
           env="COZE_TARGET_URL", ini="coze_target_url", parse=_url, metavar="URL"),
    Option("--api-key", "api_key", "API key of the first principal, sent as 'Authorization: Bearer'.",
           env="COZE_API_KEY", parse=_secret, secret=True, metavar="KEY"),
    Option("--session-key", "session_key", "Session key of the first principal, sent as cookie 'session_key'.",
           env="COZE_SESSION_KEY", parse=_secret, secret=True, metavar="KEY"),
    Option("--api-key-2", "api_key_2", "API key of a second principal, for isolation tests.",
           env="COZE_API_KEY_2", parse=_secret, secret=True, metavar="KEY"),
    Option("--session-key-2", "session_key_2", "Session key of a second principal, for isolation tests.",
           env="COZE_SESSION_KEY_2", parse=_secret, secret=True, metavar="KEY"),
    Option("--email", "email", "Email of the first principal, for a profile with a login endpoint (studio): the suite "
           "logs in for a session key and mints an API key when those are not given.",
           env="COZE_EMAIL", parse=_secret, secret=True, metavar="EMAIL"),
    Option("--password", "password", "Password of the first principal (with --email).",
           env="COZE_PASSWORD", parse=_secret, secret=True, metavar="PASSWORD"),
    Option("--email-2", "email_2", "Email of a second principal (with --password-2), for isolation tests.",
           env="COZE_EMAIL_2", parse=_secret, secret=True, metavar="EMAIL"),
    Option("--password-2", "password_2", "Password of the second principal.",
           env="COZE_PASSWORD_2", parse=_secret, secret=True, metavar="PASSWORD"),
    Option("--profile", "profile", "Wire profile the checks read (data files in conformance/oracle/profiles/).",
           env="COZE_PROFILE", ini="coze_profile", default="doc", parse=_profile, metavar="NAME"),
    Option("--bot-id", "bot_id", "Use this existing published bot instead of creating one.",
           env="COZE_BOT_ID", ini="coze_bot_id", parse=_digits, metavar="ID"),
    Option("--model", "model", "Model name sent when the suite creates bots; omitted by default.",
           env="COZE_MODEL", ini="coze_model", metavar="NAME"),
    Option("--space-id", "space_id", "Workspace the suite creates its bots in, for a profile whose create takes one "
           "(coze: required against a remote target).",
           env="COZE_SPACE_ID", ini="coze_space_id", parse=_digits, metavar="ID"),
    Option("--dialect", "dialect", "The embedded reference server's dialect (default: the profile's); a target of "
           "another dialect shows what a profile makes of it.",
           env="COZE_DIALECT", ini="coze_dialect", parse=_dialect, metavar="NAME"),
    Option("--request-timeout", "request_timeout", "Overall deadline of one request, in seconds (the spec's 30 s best practice).",
           env="COZE_REQUEST_TIMEOUT", ini="coze_request_timeout", default=30.0, parse=_positive_seconds, metavar="S"),
    Option("--stream-timeout", "stream_timeout", "Overall deadline of one stream, in seconds (the spec's 60 s best practice).",
           env="COZE_STREAM_TIMEOUT", ini="coze_stream_timeout", default=60.0, parse=_positive_seconds, metavar="S"),
    Option("--report-dir", "report_dir", "Folder for the JUnit, Allure, HTML and results.json reports.",
           env="COZE_REPORT_DIR", ini="coze_report_dir", metavar="DIR"),
    Option("--expected-failures", "expected_failures", "TOML baseline of expected failures.",
           env="COZE_EXPECTED_FAILURES", ini="coze_expected_failures", parse=_existing_file, metavar="FILE"),
    Option("--compare-to", "compare_to", "results.json of an earlier run of the same profile: the terminal, the HTML report "
           "and results.json also say what changed since (the exit code stays this run's).",
           env="COZE_COMPARE_TO", ini="coze_compare_to", parse=_results_file, metavar="FILE"),
    Option("--fuzz-examples", "fuzz_examples", "Hypothesis examples per fuzzed endpoint (default against a remote target: what the rate budget leaves in the windows the run needs anyway, at most 25; the header says how many).",
           env="COZE_FUZZ_EXAMPLES", ini="coze_fuzz_examples", parse=_count, metavar="N"),
    Option("--rate-budget", "rate_budgets", "Requests per rate window the suite allows itself per group, e.g. chat=30 "
           "(repeatable; default: the profile's documented limits).",
           env="COZE_RATE_BUDGET", ini="coze_rate_budget", default=(), parse=_budget, multiple=True, metavar="GROUP=N"),
    Option("--rate-limit", "rate_limits", "The target's rate limit of a group per window, e.g. chat=30 (repeatable; default: "
           "the profile's documented limits), for a deployment configured with other limits; the embedded server then "
           "uses them too.",
           env="COZE_RATE_LIMIT", ini="coze_rate_limit", default=(), parse=_rate_limit, multiple=True, metavar="GROUP=N"),
    Option("--rate-window", "rate_window", "The target's rate-limit window in seconds (default: the profile's, the spec's "
           "minute), for a deployment configured with a shorter one; the embedded server then uses it too.",
           env="COZE_RATE_WINDOW", ini="coze_rate_window", parse=_positive_seconds, metavar="S"),
    Option("--ratelimit-exact", "ratelimit_exact", "Also run the exact rate-limit checks (idle window, the first N admitted, "
           "recovery); adds minutes of waiting.",
           env="COZE_RATELIMIT_EXACT", ini="coze_ratelimit_exact", default=False, parse=_bool, flag_only=True),
    Option("--header", "headers", "Extra request header 'Name: value' (repeatable), e.g. for a gateway.",
           env="COZE_HEADERS", ini="coze_headers", default=(), parse=_header, multiple=True, metavar="'NAME: VALUE'"),
    Option("--ca-bundle", "ca_bundle", "CA bundle (PEM file) to verify the target's TLS certificate.",
           env="COZE_CA_BUNDLE", ini="coze_ca_bundle", parse=_existing_file, metavar="FILE"),
    Option("--insecure", "insecure", "Do not verify the target's TLS certificate.",
           env="COZE_INSECURE", ini="coze_insecure", default=False, parse=_bool, flag_only=True),
    Option("--requirement", "requirements", "Run only tests checking these requirement ids (fnmatch globs; repeatable).",
           env="COZE_REQUIREMENT", default=(), multiple=True, metavar="ID-OR-GLOB"),
    Option("--list-requirements", "list_requirements", "Print the requirement catalogue and exit.",
           default=False, flag_only=True),
)

OPTIONS_BY_DEST: Mapping[str, Option] = {o.dest: o for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. ``repr`` never shows a secret value."""

    target_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    session_key: str | None = field(default=None, repr=False)
    api_key_2: str | None = field(default=None, repr=False)
    session_key_2: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    email_2: str | None = field(default=None, repr=False)
    password_2: str | None = field(default=None, repr=False)
    profile: str = "doc"
    bot_id: str | None = None
    model: str | None = None
    space_id: str | None = None
    dialect: str | None = None
    request_timeout: float = 30.0
    stream_timeout: float = 60.0
    report_dir: str | None = None
    expected_failures: str | None = None
    compare_to: str | None = None
    fuzz_examples: int | None = None
    rate_budgets: tuple[tuple[str, int], ...] = ()
    rate_limits: tuple[tuple[str, int], ...] = ()
    rate_window: float | None = None
    ratelimit_exact: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    ca_bundle: str | None = None
    insecure: bool = False
    requirements: tuple[str, ...] = ()
    list_requirements: bool = False
    strict: bool = False
    #: True when the suite started its own reference server as the target.
    embedded: bool = False
    #: dest -> where its value came from (CLI, an env var, an ini key or default).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "sources":
                continue
            if f.name in SECRET_DESTS:
                shown.append(f"{f.name}={'<set>' if value else None}")
            elif f.name == "headers":
                # Gateway headers often carry tokens: show the names only.
                shown.append(f"headers={[name for name, _ in value]!r}")
            else:
                shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @property
    def secrets(self) -> dict[str, str]:
        """Label -> value of every configured secret, for the redactor."""
        labelled = {OPTIONS_BY_DEST[d].env or d: getattr(self, d) for d in SECRET_DESTS}
        labelled.update({f"header {name}": value for name, value in self.headers if value})
        return {label: value for label, value in labelled.items() if value}

    @property
    def has_principal_2(self) -> bool:
        return bool(self.api_key_2 or self.session_key_2 or self.email_2)

    def auth_modes(self, second: bool = False) -> list[str]:
        key, session = (self.api_key_2, self.session_key_2) if second else (self.api_key, self.session_key)
        return [mode for mode, value in (("bearer", key), ("cookie", session)) if value]

    def to_worker(self) -> dict[str, Any]:
        """Plain data for xdist workers (execnet carries it; it is never printed)."""
        data = dataclasses.asdict(self)
        data["sources"] = dict(self.sources)
        return data

    @classmethod
    def from_worker(cls, data: Mapping[str, Any]) -> Settings:
        values = dict(data)
        values["headers"] = tuple(tuple(h) for h in values["headers"])
        values["requirements"] = tuple(values["requirements"])
        values["rate_budgets"] = tuple(tuple(b) for b in values["rate_budgets"])
        values["rate_limits"] = tuple(tuple(b) for b in values["rate_limits"])
        return cls(**values)

    def header_line(self) -> str:
        """The report header: target, profile, auth modes, strictness -- never secrets."""
        target = f"{self.target_url} (embedded reference server)" if self.embedded else self.target_url
        auth1 = "+".join(self.auth_modes()) or "none"
        auth2 = "+".join(self.auth_modes(second=True)) or "not configured"
        return (
            f"conformance: target {target}; profile {self.profile}; "
            f"auth principal 1: {auth1}, principal 2: {auth2}; "
            f"strict: {'yes (SHOULD requirements fail)' if self.strict else 'no (SHOULD requirements warn)'}; "
            f"timeouts: request {self.request_timeout:g} s, stream {self.stream_timeout:g} s"
        )


SECRET_DESTS = tuple(o.dest for o in OPTIONS if o.secret)


def add_options(parser: pytest.Parser) -> None:
    """Declare every option of ``OPTIONS`` (flags and ini keys) on pytest's parser."""
    group = parser.getgroup("conformance", "Coze Plus Agent API conformance")
    for opt in OPTIONS:
        help_text = opt.help + (f" [env {opt.env}]" if opt.env else "")
        if opt.flag_only:
            group.addoption(opt.flag, dest=opt.dest, action="store_true", default=None, help=help_text)
        elif opt.multiple:
            group.addoption(opt.flag, dest=opt.dest, action="append", default=None, metavar=opt.metavar, help=help_text)
        else:
            group.addoption(opt.flag, dest=opt.dest, default=None, metavar=opt.metavar, help=help_text)
        if opt.ini:
            if opt.multiple:
                parser.addini(opt.ini, opt.help, type="linelist", default=None)
            else:
                parser.addini(opt.ini, opt.help, type="string", default=None)


def _split_list(text: str) -> list[str]:
    sep = "\n" if "\n" in text else ","
    return [item.strip() for item in text.split(sep) if item.strip()]


def _raw_value(opt: Option, config: pytest.Config, environ: Mapping[str, str]) -> tuple[Any, str]:
    """The unparsed value of one option and its source, by precedence."""
    cli = config.getoption(opt.dest, default=None)
    if cli not in (None, []):
        return (True if opt.flag_only else cli), CLI
    if opt.env and opt.env in environ and (environ[opt.env] != "" or not opt.flag_only):
        raw = environ[opt.env]
        return (_split_list(raw) if opt.multiple else raw), opt.env
    if opt.ini:
        ini = config.getini(opt.ini)
        if ini not in (None, [], ""):
            where = config.inipath.name if config.inipath else "ini"
            return ini, f"ini {opt.ini} in {where}"
    return opt.default, DEFAULT


def _without_userinfo(text: str) -> str:
    """A value as it may be shown: URL userinfo (a password, often) replaced."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", text)


def _parse(opt: Option, raw: Any, source: str) -> Any:
    if source == DEFAULT:
        return raw
    if opt.flag_only and raw is True:
        return True
    values = raw if opt.multiple else [raw]
    parsed = []
    for value in values:
        try:
            parsed.append(opt.parse(str(value)))
        except ValueError as exc:
            shown = "<secret>" if opt.secret else repr(_without_userinfo(str(value)))
            raise SettingsError(f"invalid {opt.flag} {shown} (from {source}): {exc}") from None
    return tuple(parsed) if opt.multiple else parsed[0]


def resolve_option(config: pytest.Config, dest: str, environ: Mapping[str, str] | None = None) -> Any:
    """One option's value alone (CLI > environment > ini > default), unvalidated by the
    others: what ``--list-requirements`` needs of ``--profile``."""
    opt = OPTIONS_BY_DEST[dest]
    raw, source = _raw_value(opt, config, os.environ if environ is None else environ)
    return _parse(opt, raw, source)


def resolve_settings(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve and validate every option: CLI > environment > ini > default."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        raw, source = _raw_value(opt, config, env)
        values[opt.dest] = _parse(opt, raw, source)
        sources[opt.dest] = source
    strict_env = env.get("COZE_STRICT", "")
    try:
        strict_from_env = _bool(strict_env)
    except ValueError as exc:
        raise SettingsError(f"invalid COZE_STRICT {strict_env!r} (from COZE_STRICT): {exc}") from None
    values["strict"] = bool(config.getini("strict")) or strict_from_env
    sources["strict"] = CLI if config.getini("strict") else ("COZE_STRICT" if strict_from_env else DEFAULT)
    settings = Settings(**values, sources=sources)
    _check_combinations(settings)
    return settings


def _check_combinations(s: Settings) -> None:
    src = s.sources
    if s.target_url and not (s.api_key or s.session_key or (s.email and s.password)):
        raise SettingsError(
            f"--target-url {s.target_url!r} (from {src['target_url']}) needs a credential: "
            "set --api-key / COZE_API_KEY or --session-key / COZE_SESSION_KEY (or --email and --password)"
        )
    for email, password in (("email", "password"), ("email_2", "password_2")):
        if bool(getattr(s, email)) != bool(getattr(s, password)):
            given, missing = (email, password) if getattr(s, email) else (password, email)
            raise SettingsError(
                f"{OPTIONS_BY_DEST[given].flag} (from {src[given]}) needs {OPTIONS_BY_DEST[missing].flag} "
                f"({OPTIONS_BY_DEST[missing].env})"
            )
    if not s.target_url:
        for dest in SECRET_DESTS + ("bot_id",):
            if getattr(s, dest):
                opt = OPTIONS_BY_DEST[dest]
                raise SettingsError(
                    f"{opt.flag} (from {src[dest]}) needs --target-url: the embedded reference server "
                    "makes its own credentials and bots"
                )
    if s.ca_bundle and s.insecure:
        raise SettingsError(
            f"--ca-bundle (from {src['ca_bundle']}) and --insecure (from {src['insecure']}) contradict each other"
        )
    if s.compare_to:
        from conformance.reporting.compare import load_results

        earlier = load_results(s.compare_to)["profile"]
        if earlier != s.profile:
            raise SettingsError(
                f"invalid --compare-to {s.compare_to!r} (from {src['compare_to']}): a run of profile {earlier!r}, this one is of "
                f"{s.profile!r} (from {src['profile']}); a profile decides which requirements exist, so compare such runs "
                "with coze-conformance compare --allow-profile-change"
            )
    for first, second in (("api_key", "api_key_2"), ("session_key", "session_key_2")):
        if getattr(s, first) and getattr(s, first) == getattr(s, second):
            raise SettingsError(
                f"{OPTIONS_BY_DEST[second].flag} (from {src[second]}) equals {OPTIONS_BY_DEST[first].flag} "
                f"(from {src[first]}): the second principal must differ from the first"
            )


def markdown_table(options: Sequence[Option] = OPTIONS) -> str:
    """The README's option table, generated from ``OPTIONS``."""
    rows = [
        "| option | environment | ini key | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for o in options:
        default = "" if o.default in (None, (), False) else f"`{o.default}`"
        meaning = o.help.replace("|", "\\|")
        rows.append(
            f"| `{o.flag}` | {f'`{o.env}`' if o.env else ''} | {f'`{o.ini}`' if o.ini else ''} | {default} | {meaning} |"
        )
    rows.append(
        "| `--strict` (pytest's own) | `COZE_STRICT=1` | `strict = true` |  | SHOULD requirements fail instead of warning. |"
    )
    return "\n".join(rows)


if __name__ == "__main__":  # python -m conformance.settings  -> the README table
    sys.stdout.write(markdown_table() + "\n")
