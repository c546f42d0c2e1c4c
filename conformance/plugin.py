"""The pytest plugin of the Coze Plus conformance suite.

Loaded in every pytest run of its environment (entry point ``pytest11``), it stays
inert -- no server, no preflight, no network -- unless the run collects the suite's
own test modules (``pytest conformance`` or ``pytest --pyargs conformance``).

In a conformance run the controlling process (the only process without xdist, the
controller with it) resolves the settings before collection, starts the embedded
reference server when no ``--target-url`` is given, runs the preflight, and hands the
resolved settings to the xdist workers. Every test judges requirements through the
``check`` fixture (see ``conformance.oracle.outcomes``); the records travel on the test
reports, so the controller sees every judgement of every worker.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets as _secrets
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance.keys import (
    CHECKS_KEY,
    LOG_KEY,
    PROFILE_DECLARED_KEY,
    RECORDS_ATTR,
    SETTINGS_KEY,
    SUITE_DIR,
    declared_requirements,
    marked_requirements,
)
from conformance.oracle.outcomes import (
    Checks,
    Outcome,
    Record,
    RequirementFailed,
    format_record,
    summarise,
)
from conformance.settings import Settings, SettingsError, add_options, resolve_settings

# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("list_requirements"):
        from conformance.oracle.catalogue import format_catalogue, load_catalogue
        from conformance.settings import resolve_option

        profile = str(resolve_option(config, "profile"))  # --profile, COZE_PROFILE or the ini key
        catalogue = load_catalogue().for_profile(profile)
        sys.stdout.write(f"profile {profile}:\n" + format_catalogue(catalogue, verbose=config.getoption("verbose") > 0) + "\n")
        return 0
    return None


# --------------------------------------------------------------------------- is this a conformance run?


def _arg_path(config: pytest.Config, arg: str) -> Path | None:
    target = arg.split("::", 1)[0]
    if config.getoption("pyargs", False) and not target.endswith(".py") and "/" not in target:
        import importlib.util

        try:
            spec = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            if spec.submodule_search_locations:
                return Path(next(iter(spec.submodule_search_locations))).resolve()
            if spec.origin:
                return Path(spec.origin).resolve()
    return (config.invocation_params.dir / target).resolve()


def targets_suite(config: pytest.Config) -> bool:
    """Whether this run collects the suite's own test modules (judged from the args,
    before collection, so the controller can start the server before xdist workers)."""
    if hasattr(config, "workerinput"):
        return "coze_settings" in config.workerinput
    for arg in config.args:
        path = _arg_path(config, arg)
        if path is None:
            continue
        if path == SUITE_DIR or SUITE_DIR in path.parents or path in SUITE_DIR.parents:
            return True
    return False


# --------------------------------------------------------------------------- configure


class _Run:
    """State of one conformance run, registered as a plugin for its reporting hooks."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.server: Any = None
        self.server_headers: dict[str, str] | None = None
        self.records: list[Record] = []
        self.suite_items = 0
        from conformance.run.timing import RunTiming

        self.timing = RunTiming()
        self.worker = str(config.workerinput["workerid"]) if hasattr(config, "workerinput") else "main"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Under xdist the controller sees the workers' reports here, records included.
        from conformance.run.timing import TIMING_ATTR

        records = getattr(report, RECORDS_ATTR, None)
        if records:
            self.records.extend(Record.from_dict(r) for r in records)
        timing = getattr(report, TIMING_ATTR, None)
        if isinstance(timing, dict):
            self.timing.add(timing, str(timing.get("worker", "main")))

    # ---- where the time went (conformance.run.timing)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from conformance.run.timing import TALLY

        TALLY.take()  # what this process did before the run is not the run's

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        if item.get_closest_marker("ratelimit") is None:
            return (yield)
        from conformance.run.timing import TALLY

        with TALLY.phase():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        from conformance.run.timing import TALLY, TIMING_ATTR

        setattr(report, TIMING_ATTR, {"worker": self.worker, **TALLY.take()})
        return report

    def time_split(self, wall: float) -> Any:
        """The run's wall time split into its parts, with the floor the budget sets
        (a ``conformance.run.timing.TimeSplit``; the reporter prints and stores it)."""
        from conformance.oracle.profile import target_profile
        from conformance.run.pacing import run_budgets
        from conformance.run.timing import summarise

        settings = self.config.stash[SETTINGS_KEY]
        limits = target_profile(settings).ratelimits
        return summarise(self.timing, wall, [g.name for g in limits.groups], run_budgets(settings), limits.window_seconds)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput") or not self.records:
            return
        outcomes = summarise(self.records)
        levels = {r.requirement: r.level for r in self.records}
        tr = terminalreporter
        tr.section("conformance: requirements")
        for rid in sorted(outcomes):
            if outcomes[rid] is not Outcome.PASS or tr.verbosity > 0:
                tr.write_line(f"{outcomes[rid]:<5} {rid:<18} {levels[rid]}")
        counts = {o: sum(1 for v in outcomes.values() if v is o) for o in Outcome}
        tr.write_line(
            f"{len(outcomes)} requirements judged: "
            + ", ".join(f"{counts[o]} {o}" for o in (Outcome.PASS, Outcome.FAIL, Outcome.WARN, Outcome.SKIP))
        )


RUN_KEY = pytest.StashKey[_Run]()


@pytest.hookimpl(tryfirst=True)  # before junitxml, pytest-html and allure read their options
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirement(*ids): the catalogue requirement ids this conformance test judges"
    )
    config.addinivalue_line("markers", "ratelimit: a rate-limit test; runs after every other test")
    if not targets_suite(config):
        return
    _OUTAGES.clear()  # a run in the same process (pytester) does not inherit an outage
    run = _Run(config)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(run, "conformance-run")
    from conformance.reporting.certification import install

    if hasattr(config, "workerinput"):
        config.stash[SETTINGS_KEY] = Settings.from_worker(config.workerinput["coze_settings"])
        install(config, run)
        return
    settings = resolve_settings(config)
    if not settings.target_url:
        settings, run.server = _start_embedded(settings)
    elif settings.dialect is not None:
        raise pytest.UsageError(f"--dialect (from {settings.sources.get('dialect')}) sets the embedded server's dialect; "
                                "it means nothing with a --target-url")
    else:
        settings = _log_in(settings)
    _needs_space(settings)
    config.stash[SETTINGS_KEY] = settings
    install(config, run)
    run.server_headers = _preflight(settings)


def _log_in(settings: Settings) -> Settings:
    """Session and API keys from --email/--password where the profile logs in
    (conformance/transport/login.py); one line and exit code 3 when that fails."""
    if not (settings.email or settings.email_2):
        return settings
    from conformance.oracle.profile import load_profile
    from conformance.transport.login import LoginError, log_in

    try:
        return log_in(settings, load_profile(settings.profile))
    except LoginError as exc:
        pytest.exit(f"conformance setup: {exc}", returncode=3)


#: The workspace id the embedded server's bots live in (it takes any).
EMBEDDED_SPACE_ID = "7000000000000000001"


def _needs_space(settings: Settings) -> None:
    """A profile whose bot create takes a workspace needs one (or --bot-id is no help:
    the suite makes bots of its own for the management tests)."""
    from conformance.oracle.profile import load_profile

    profile = load_profile(settings.profile)
    if settings.space_id is None and "{space_id}" in repr(profile.bots.create_body) and not _lists_spaces(profile):
        raise pytest.UsageError(
            f"profile {settings.profile!r} creates bots in a workspace: give --space-id (or COZE_SPACE_ID)"
        )


def _lists_spaces(profile: Any) -> bool:
    """The profile finds a principal's workspace itself (its space list endpoint)."""
    return "space_list" in {e.name for e in profile.endpoints}


def _start_embedded(settings: Settings) -> tuple[Settings, Any]:
    """Start the reference server with fresh random credentials for two principals, in
    the profile's dialect unless --dialect names another."""
    from conformance.oracle.profile import load_profile
    from conformance.reference import PrincipalConfig, ReferenceServer, ServerConfig

    keys: dict[str, Any] = {name: _secrets.token_urlsafe(24) for name in ("api_key", "session_key", "api_key_2", "session_key_2")}
    # The target's rate window and limits, when given, are the embedded server's too.
    rates: dict[str, Any] = {f"{group}_limit": limit for group, limit in settings.rate_limits}
    if settings.rate_window is not None:
        rates["rate_window"] = settings.rate_window
    rates["dialect"] = settings.dialect or load_profile(settings.profile).reference_dialect
    principals = (
        PrincipalConfig(name="principal-1", api_key=keys["api_key"], session_key=keys["session_key"]),
        PrincipalConfig(name="principal-2", api_key=keys["api_key_2"], session_key=keys["session_key_2"]),
    )
    server = ReferenceServer(ServerConfig(principals=principals, **rates))
    server.start()
    profile = load_profile(settings.profile)
    if "login" in {e.name for e in profile.endpoints}:
        # The profile logs in (studio): the embedded server's principals' own emails and
        # passwords, so that the login tests run too.
        for suffix, principal in zip(("", "_2"), principals, strict=True):
            keys[f"email{suffix}"], keys[f"password{suffix}"] = principal.email, principal.password
    if settings.space_id is None and not _lists_spaces(profile):
        keys["space_id"] = EMBEDDED_SPACE_ID
    sources = dict(settings.sources, target_url="embedded", **{k: "embedded" for k in keys})
    return dataclasses.replace(settings, target_url=server.url, embedded=True, sources=sources, **keys), server


def _preflight(settings: Settings) -> dict[str, str] | None:
    from conformance.oracle.profile import load_profile
    from conformance.transport.preconditions import check_preconditions
    from conformance.transport.preflight import (
        PreflightError,
        check_same_principal,
        preflight,
    )

    client = build_client(settings)
    try:
        report = preflight(client, timeout=10)
        # Both keys of one principal must name the same principal, or every test that
        # mixes the modes would blame the server for our settings. The embedded server's
        # keys are ours; a remote target's are checked (it creates one bot, kept).
        mismatch = None
        profile = load_profile(settings.profile)
        if not settings.embedded and profile.preconditions:
            # A profile with preconditions checks the principal with them (the key
            # must be the bot owner's): check_same_principal speaks the doc's endpoints.
            unmet = check_preconditions(client, profile, bot_id=settings.bot_id, space_id=settings.space_id)
            if unmet:
                pytest.exit(f"conformance preflight: {unmet}", returncode=3)
        elif not settings.embedded and settings.api_key and settings.session_key:
            mismatch = check_same_principal(client)
    except PreflightError as exc:
        pytest.exit(f"conformance preflight: {exc}", returncode=3)
    finally:
        client.close()
    if mismatch:
        raise SettingsError(f"{mismatch} (checked by the preflight)")
    return dict(report.server_headers) if report.server_headers else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: pass the resolved settings (embedded URL and keys included)."""
    settings = node.config.stash.get(SETTINGS_KEY, None)
    if settings is not None:
        node.workerinput["coze_settings"] = settings.to_worker()


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None and run.server is not None:
        run.server.stop()
        run.server = None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return None
    lines = [settings.header_line()]
    from conformance.oracle.profile import load_profile
    from conformance.oracle.strategies import fuzzes

    if fuzzes(load_profile(settings.profile)):
        from conformance.run.pacing import fuzz_volume

        lines.append(fuzz_volume(settings)[1])
    return lines


# --------------------------------------------------------------------------- clients


#: The run's view of whether its target went down (transport.client.Outage), one per
#: target and process, shared by every client the run builds; a new run starts afresh.
_OUTAGES: dict[str, Any] = {}


def build_client(settings: Settings, *, second: bool = False, log: Any = None, pacer: Any = None) -> Any:
    """An ApiClient for principal 1 (or 2), with the other principal for isolation modes;
    paced through ``pacer`` (conformance.run.pacing) when one is given. Every client of
    the run shares one Outage: once the target stops answering, the rest of the run's
    requests fail at once instead of each waiting out its deadline."""
    from conformance.run.pacing import PacedClient
    from conformance.transport.client import Outage, Principal
    from conformance.transport.redact import Redactor

    p1 = Principal("principal-1", settings.api_key, settings.session_key)
    p2 = Principal("principal-2", settings.api_key_2, settings.session_key_2) if settings.has_principal_2 else None
    me, other = (p2, p1) if second else (p1, p2)
    assert me is not None
    from conformance.oracle.profile import load_profile

    auth = load_profile(settings.profile).auth
    verify: bool | str = False if settings.insecure else (settings.ca_bundle or True)
    return PacedClient(
        settings.target_url or "",
        me,
        pacer=pacer,
        other=other,
        request_timeout=settings.request_timeout,
        stream_timeout=settings.stream_timeout,
        extra_headers=dict(settings.headers),
        verify=verify,
        log=log,
        redactor=Redactor(settings.secrets),
        auth_for_path=functools.partial(_auth_mode, auth),
        outage=_OUTAGES.setdefault(settings.target_url or "", Outage()),
    )


def _auth_mode(auth: Any, path: str) -> str:
    """The mode of the auth class covering ``path`` (profile data); bearer elsewhere."""
    try:
        return str(auth.class_for(path).mode)
    except KeyError:
        return "bearer"


# --------------------------------------------------------------------------- collection


def _is_suite_item(item: pytest.Item) -> bool:
    return SUITE_DIR in Path(str(item.path)).resolve().parents


def collection_problems(declared: dict[str, tuple[str, ...]], catalogue: Any, profile: str) -> list[str]:
    """Why the suite's collection is unsound: a test judging no declared requirement,
    an id the catalogue does not know, or one retired. (An id of another profile is
    fine: a test may judge the same thing in several profiles; it runs in those of
    its ids' profiles, see ``in_profile``.)"""
    problems = []
    for nodeid, ids in declared.items():
        if not ids:
            problems.append(f"{nodeid}: no @pytest.mark.requirement(...)")
        for rid in ids:
            req = catalogue.get(rid)
            if req is None:
                problems.append(f"{nodeid}: unknown requirement id {rid!r}")
            elif req.retired:
                problems.append(f"{nodeid}: requirement {rid} is retired")
    return problems


def _empty_table(item: pytest.Item) -> bool:
    """A parametrized test whose table the run's profile left empty."""
    mark = item.get_closest_marker("skip")
    reason = str(mark.kwargs.get("reason", "")) if mark is not None else ""
    return reason.startswith("got empty parameter set")


def in_profile(ids: tuple[str, ...], catalogue: Any, profile: str) -> tuple[str, ...]:
    """The ids among ``ids`` that belong to ``profile``."""
    return tuple(rid for rid in ids if rid in catalogue and profile in catalogue[rid].profiles)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    suite_items = [item for item in items if _is_suite_item(item)]
    if settings is None or not suite_items:
        return
    from fnmatch import fnmatchcase

    from conformance.oracle.catalogue import load_catalogue

    catalogue = load_catalogue()
    problems = collection_problems(
        {item.nodeid: marked_requirements(item) for item in suite_items if not _empty_table(item)},
        catalogue,
        settings.profile,
    )
    if problems:
        raise pytest.UsageError("conformance collection:\n  " + "\n  ".join(problems))
    # A test none of whose requirements belongs to the run's profile does not run in it;
    # nor does a table a profile leaves empty (pytest's "got empty parameter set").
    other_profiles: list[pytest.Item] = [item for item in suite_items if _empty_table(item)]
    for item in suite_items:
        if item in other_profiles:
            continue
        ids = in_profile(marked_requirements(item), catalogue, settings.profile)
        item.stash[PROFILE_DECLARED_KEY] = ids
        if not ids:
            other_profiles.append(item)
    if other_profiles:
        config.hook.pytest_deselected(items=other_profiles)
        dropped = set(other_profiles)
        items[:] = [item for item in items if item not in dropped]
        suite_items = [item for item in suite_items if item not in dropped]
    if settings.requirements:
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            ids = declared_requirements(item) if _is_suite_item(item) else ()
            wanted = any(fnmatchcase(rid, pat) for rid in ids for pat in settings.requirements)
            (keep if wanted or not _is_suite_item(item) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    # The rate-limit phase runs after every other test (it would spend the budgets the others
    # need, and its 429s would meet them); keep order stable otherwise.
    items.sort(key=lambda item: item.get_closest_marker("ratelimit") is not None)
    config.stash[RUN_KEY].suite_items = len(suite_items)


# --------------------------------------------------------------------------- fixtures


def _settings(request: pytest.FixtureRequest) -> Settings:
    settings = request.config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        raise pytest.UsageError("conformance fixtures are only available in a conformance run (pytest conformance)")
    return settings


@pytest.fixture(scope="session")
def conformance_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved settings of this run."""
    return _settings(request)


@pytest.fixture(scope="session")
def catalogue(conformance_settings: Settings) -> Any:
    """The run profile's requirements (a rule maps to one of them at most)."""
    from conformance.oracle.catalogue import load_catalogue

    return load_catalogue().for_profile(conformance_settings.profile)


@pytest.fixture(scope="session")
def profile(conformance_settings: Settings) -> Any:
    from conformance.oracle.profile import target_profile

    return target_profile(conformance_settings)


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Checks:
    """Judge a requirement: ``check("CHAT-001", cond, expected=..., actual=...)``."""
    _settings(request)
    return _checks_for(request.node)


@pytest.fixture
def exchange_log(request: pytest.FixtureRequest) -> Any:
    """Every request and response of this test, redacted, for reports and curl."""
    from conformance.transport.client import ExchangeLog

    item = request.node
    log = item.stash.get(LOG_KEY, None)
    if log is None:
        log = ExchangeLog()
        item.stash[LOG_KEY] = log
    return log


@pytest.fixture
def api(conformance_settings: Settings, exchange_log: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An HTTP client of the first principal, paced across the run's workers."""
    from conformance.run.pacing import pacer_for

    client = build_client(conformance_settings, log=exchange_log, pacer=pacer_for(request.config))
    yield client
    client.close()


@pytest.fixture
def api2(conformance_settings: Settings, exchange_log: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An HTTP client of the second principal; SKIPs when none is configured."""
    from conformance.run.pacing import pacer_for

    if not conformance_settings.has_principal_2:
        pytest.skip("no second principal configured (--api-key-2 / --session-key-2)")
    client = build_client(conformance_settings, second=True, log=exchange_log, pacer=pacer_for(request.config))
    yield client
    client.close()


# --------------------------------------------------------------------------- reports


def _checks_for(item: pytest.Item) -> Checks:
    checks = item.stash.get(CHECKS_KEY, None)
    if checks is None:
        from conformance.oracle.catalogue import load_catalogue

        settings = item.config.stash[SETTINGS_KEY]
        checks = Checks(declared_requirements(item), load_catalogue(), strict=settings.strict, nodeid=item.nodeid)
        item.stash[CHECKS_KEY] = checks
    return checks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a suite test ran, judge every answer it saw (conformance.oracle.envelope_judge)."""
    from conformance.transport.client import MissingCredential

    try:
        return (yield)
    except MissingCredential as exc:
        # A mode this run has no credential for cannot be judged: SKIP, with the reason.
        raise pytest.skip.Exception(str(exc), _use_item_location=True) from None
    finally:
        log = item.stash.get(LOG_KEY, None)
        if log is not None and len(log) and _is_suite_item(item):
            from conformance.oracle.envelope_judge import exchange_requirements, judge_exchanges
            from conformance.oracle.profile import target_profile

            settings = item.config.stash[SETTINGS_KEY]
            checks = _checks_for(item)
            from conformance.oracle.catalogue import load_catalogue

            rules = exchange_requirements(load_catalogue().for_profile(settings.profile))
            judge = Checks(rules.values(), checks.catalogue, strict=settings.strict, nodeid=item.nodeid)
            base_path = urlsplit(settings.target_url or "").path.rstrip("/")
            judge_exchanges(
                log, target_profile(settings), functools.partial(judge, soft=True), base_path=base_path, rules=rules
            )
            checks.records.extend(judge.records)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    checks = item.stash.get(CHECKS_KEY, None)
    if checks is None:
        return report
    if report.when in ("setup", "call") and call.excinfo is not None:
        _transport_failure(checks, call.excinfo)
    already = item.stash.get(_SENT_KEY, 0)
    new = checks.records[already:]
    item.stash[_SENT_KEY] = len(checks.records)
    if report.when == "call" or new:
        setattr(report, RECORDS_ATTR, [r.to_dict() for r in new])
    _surface_failures(item, checks, report, call.excinfo)
    if report.when == "call":
        if report.failed:
            log = item.stash.get(LOG_KEY, None)
            if log is not None and len(log):
                report.sections.append(("Reproduce with", log.to_curl_script()))
        warnings = [r for r in checks.records if r.outcome is Outcome.WARN]
        if warnings:
            report.sections.append(
                ("SHOULD warnings", "\n".join(format_record(r, gloss=checks.catalogue[r.requirement].gloss) for r in warnings))
            )
    return report


_SENT_KEY = pytest.StashKey[int]()
#: How many of a test's records a failed report of that test already answers for.
_SURFACED_KEY = pytest.StashKey[int]()
FAILED_REQUIREMENTS_SECTION = "Failed requirements"


def _surface_failures(
    item: pytest.Item, checks: Checks, report: pytest.TestReport, excinfo: pytest.ExceptionInfo[BaseException] | None
) -> None:
    """One truth: a test that recorded a FAIL is a failed test, naming the requirement.

    * A test that passed, or that SKIPped after its checks failed (a setup step the
      server broke: "blocked by ..."; a mode with no credential), fails, with every
      failed record and the reason it stopped.
    * A test that failed with anything else keeps its traceback, and gains the failed
      requirements it does not name (its crash line too, so the short summary and
      JUnit's message say which requirement failed).
    * A setup that SKIPs after a fixture's check failed fails the same way (pytest calls
      it an error at setup); a setup that goes on leaves the failure to the test itself.
    * A FAIL recorded in teardown fails the teardown.

    Soft MUST failures and SHOULD failures under ``--strict`` reach the test this way."""
    start = item.stash.get(_SURFACED_KEY, 0)
    pending = [r for r in checks.records[start:] if r.outcome is Outcome.FAIL]
    if not pending or (report.when == "setup" and report.passed):
        return
    item.stash[_SURFACED_KEY] = len(checks.records)
    catalogue = checks.catalogue
    text = "\n\n".join(format_record(r, catalogue[r.requirement].quote, catalogue[r.requirement].gloss) for r in pending)
    ids = ", ".join(dict.fromkeys(r.requirement for r in pending))
    if report.passed:
        report.outcome = "failed"
        report.longrepr = text if report.when == "call" else f"{ids} failed in {report.when}\n\n{text}"
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3 else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{text}\n\nthen the test stopped ({report.when}): {reason}"
    elif excinfo is not None and _is_transport_error(excinfo.value):
        # The target broke the exchange (a reset, a deadline, the size cap ...): the
        # message says what happened, and a traceback would show only the client's insides.
        report.longrepr = f"{excinfo.value}\n\n{text}"
    else:
        named = _raised_requirements(excinfo.value) if excinfo is not None else set()
        missing = [r for r in pending if r.requirement not in named]
        if missing:
            section = "\n\n".join(format_record(r, catalogue[r.requirement].quote, catalogue[r.requirement].gloss) for r in missing)
            longrepr = report.longrepr
            addsection = getattr(longrepr, "addsection", None)
            if callable(addsection):
                addsection(FAILED_REQUIREMENTS_SECTION, section)
            else:
                report.longrepr = f"{longrepr}\n\n{' ' + FAILED_REQUIREMENTS_SECTION + ' ':-^80}\n{section}"
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None and missing:
            crash.message = f"{ids} failed; {crash.message}"


def _raised_requirements(exc: BaseException) -> set[str]:
    """The requirements a raised ``RequirementFailed`` (or a group of them) names."""
    if isinstance(exc, BaseExceptionGroup):
        return {rid for e in exc.exceptions for rid in _raised_requirements(e)}
    return {exc.record.requirement} if isinstance(exc, RequirementFailed) else set()


def _is_transport_error(exc: BaseException) -> bool:
    from conformance.transport.client import TransportError

    return isinstance(exc, TransportError)


def _transport_failure(checks: Checks, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """A transport error after a good preflight is the server's failure: it FAILs the
    test's requirements that were not judged yet, carrying the transport message."""
    if not _is_transport_error(excinfo.value):
        return
    judged = checks.judged()
    for rid in sorted(checks.declared - judged):
        req = checks.catalogue[rid]
        checks.records.append(
            Record(rid, req.level, Outcome.FAIL, expected="an answer", actual=str(excinfo.value), detail="transport error", nodeid=checks.nodeid)
        )


__all__ = [
    "CHECKS_KEY",
    "SETTINGS_KEY",
    "RequirementFailed",
    "SettingsError",
    "build_client",
    "declared_requirements",
    "targets_suite",
]
