"""Certification: the reporter that turns a conformance run's records into its verdict,
exit code, terminal summary and reports (results.json, and through pytest's own
plugins JUnit, HTML and Allure). The rules of the verdict and the exit code are
:mod:`conformance.reporting.verdict`'s; this module gathers what they judge -- every
test's records, its ERRORs (a test that failed with anything but a recorded FAIL), the
baseline's excuses -- and says it once, the same in every report.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.keys import CHECKS_KEY, SETTINGS_KEY, declared_requirements
from conformance.oracle.outcomes import (
    Outcome,
    Record,
    RequirementFailed,
    format_record,
)
from conformance.reporting.baseline import (
    Baseline,
    EntryStatus,
    baseline_key,
    entry_statuses,
    load_baseline,
)
from conformance.reporting.compare import Comparison, compare, format_text
from conformance.reporting.provenance import effective_options, suite_provenance
from conformance.reporting.verdict import (
    XFAIL,
    RequirementResult,
    Status,
    Verdict,
    exit_code,
    fold,
    judge,
    requirement_results,
)
from conformance.settings import Settings, SettingsError
from conformance.transport.redact import Redactor

__all__ = ["FORMAT_VERSION", "PLUGIN_NAME", "REPORT_FILES", "CertificationReporter", "install"]

#: 2: the ``comparison`` key (``--compare-to``).
FORMAT_VERSION = 2

#: What one run writes into ``--report-dir``.
REPORT_FILES = {"junit": "junit.xml", "html": "report.html", "allure": "allure-results", "results": "results.json"}


# Findings kept per requirement in results.json: enough to explain, bounded in size.
_FINDINGS_PER_REQUIREMENT = 20


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _crash_line(report: pytest.CollectReport | pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or report.longreprtext or "failed"
    return text.strip().splitlines()[0] if text.strip() else "failed"


def _describe(excinfo: pytest.ExceptionInfo[BaseException] | None, report: pytest.TestReport) -> str:
    if excinfo is None:
        return _crash_line(report)
    first = str(excinfo.value).strip().splitlines()
    return f"{excinfo.typename}: {first[0]}" if first else excinfo.typename


def _server_failure(exc: BaseException) -> bool:
    """RequirementFailed or the client's TransportError, or a group of nothing else
    (hypothesis reports several distinct failures, or a flaky one, as a group)."""
    from conformance.transport.client import TransportError

    if isinstance(exc, BaseExceptionGroup):
        return all(_server_failure(e) for e in exc.exceptions)
    return isinstance(exc, (RequirementFailed, TransportError))


REPRODUCE_SECTION = "Reproduce with"
#: The failing test that shows a requirement FAILing when no test of its own ended
#: failed (CertificationReporter._report_unshown_failures; never expected to run).
SYNTHETIC_NODEID = "conformance::requirements_failed_outside_a_failing_test"
_BASELINE_KEY = pytest.StashKey[str]()


# --------------------------------------------------------------------------- the plugin


class CertificationReporter:
    """The reporting layer of a conformance run, registered as a pytest plugin in
    the controller and in every xdist worker (see :func:`install`).

    In the process that runs a test it classifies the test (FAIL or ERROR), applies
    the baseline, attaches requirement properties, moves the curl reproduction into
    the failure text and redacts the report. In the controller it gathers every
    report, computes the verdict and the exit code, and writes the reports.
    """

    def __init__(self, config: pytest.Config, run: Any, *, catalogue: Any = None, spec_sha256: str | None = None) -> None:
        self.config = config
        self.run = run
        self.settings: Settings = config.stash[SETTINGS_KEY]
        if catalogue is None:
            from conformance.oracle.catalogue import load_catalogue

            catalogue = load_catalogue()
        self.catalogue = catalogue
        self._spec_sha256 = spec_sha256
        self.redactor = Redactor(self.settings.secrets)
        path = self.settings.expected_failures
        self.baseline = load_baseline(path, catalogue) if path else Baseline()
        self.controller = not hasattr(config, "workerinput")
        self.report_dir = (config.invocation_params.dir / self.settings.report_dir).resolve() if self.settings.report_dir else None
        # Controller state, filled from the reports of every worker.
        self.keys: dict[str, str] = {}
        self.ran: set[str] = set()
        self.errors: list[tuple[str, str, str]] = []  # (node id, phase, message)
        self.test_outcomes: dict[str, str] = {}
        self.started = time.time()
        self.verdict: Verdict | None = None
        self.time_split: Any = None  # conformance.run.timing.TimeSplit, from conclude()
        self.results: dict[str, RequirementResult] = {}
        self.statuses: dict[Any, EntryStatus] = {}
        self.exit_code: int | None = None
        self.allure: Any = None  # AllureLabels when allure-pytest is installed (pytest_configure)
        # --compare-to: the earlier run's results.json (the settings checked it) and,
        # once the verdict exists, what changed since (conformance.reporting.compare).
        self.compared_to: dict[str, Any] | None = None
        if self.controller and self.settings.compare_to:
            from conformance.reporting.compare import ResultsError, load_results

            try:
                self.compared_to = load_results(self.settings.compare_to)
            except ResultsError as exc:  # the settings read it; it changed since
                raise SettingsError(f"invalid --compare-to {self.settings.compare_to!r}: {exc.problem}") from None
        self.comparison: Comparison | None = None

    # ---- catalogue views

    def requirement(self, rid: str) -> Any:
        return self.catalogue.get(rid)

    def profile_ids(self) -> list[str]:
        return list(self.catalogue.for_profile(self.settings.profile))

    def must_ids(self) -> list[str]:
        profile = self.catalogue.for_profile(self.settings.profile)
        return [rid for rid, req in profile.items() if req.level == "MUST" and not req.retired]

    def spec_sha256(self) -> str:
        if self._spec_sha256 is None:
            from conformance.oracle.catalogue import spec_sha256

            self._spec_sha256 = spec_sha256()
        return self._spec_sha256

    # ---- configure: point pytest's own report plugins at --report-dir

    def pytest_configure(self, config: pytest.Config) -> None:
        from conformance.reporting import allure as allure_labels
        from conformance.reporting import html as htmlreport

        option, pm = config.option, config.pluginmanager
        if self.report_dir is not None:
            if self.controller:
                self.report_dir.mkdir(parents=True, exist_ok=True)
                if not getattr(option, "xmlpath", None):
                    option.xmlpath = str(self.report_dir / REPORT_FILES["junit"])
                if pm.hasplugin("html") and not getattr(option, "htmlpath", None):
                    option.htmlpath = str(self.report_dir / REPORT_FILES["html"])
                    option.self_contained_html = True
            if pm.hasplugin("allure_pytest") and not getattr(option, "allure_report_dir", None):
                # Every xdist worker writes its own results, so each sets the option
                # (workers parse only the command line); the controller cleans the
                # folder once, before any worker starts.
                allure_dir = self.report_dir / REPORT_FILES["allure"]
                if self.controller:
                    shutil.rmtree(allure_dir, ignore_errors=True)
                option.allure_report_dir = str(allure_dir)
                option.clean_alluredir = False
        if pm.hasplugin("html") and self.controller:
            pm.register(htmlreport.HtmlSummary(self), "conformance-html")
        self.allure = allure_labels.AllureLabels(self) if pm.hasplugin("allure_pytest") else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()
        self._check_wiring()

    def _check_wiring(self) -> None:
        """junitxml, pytest-html and allure-pytest read their options in their own
        ``pytest_configure``, so the conformance plugin must have set them first.
        Say so loudly rather than silently write fewer reports than promised."""
        if not self.controller or self.report_dir is None:
            return
        from _pytest.junitxml import xml_key

        option, pm = self.config.option, self.config.pluginmanager
        names = [name for name, _ in pm.list_name_plugin()]
        missing = []
        if getattr(option, "xmlpath", None) and xml_key not in self.config.stash:
            missing.append("JUnit XML")
        if getattr(option, "htmlpath", None) and not any(type(p).__module__.startswith("pytest_html.") for p in pm.get_plugins()):
            missing.append("HTML (pytest-html)")
        if getattr(option, "allure_report_dir", None):
            if "allure_listener" not in names:
                missing.append("Allure (allure-pytest)")
            elif names.index("allure_listener") < names.index(pm.get_name(self) or ""):
                # allure-pytest reads a test's status inside pytest_runtest_makereport;
                # its wrapper must enclose ours, or baselined failures show as failed.
                missing.append("Allure (its listener was registered before the conformance reporter)")
        if missing:
            raise pytest.UsageError(
                "conformance --report-dir: " + ", ".join(missing) + " not set up: the conformance plugin's "
                "pytest_configure must run before theirs (mark it tryfirst=True)"
            )

    # ---- the process that runs the test

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        checks = item.stash.get(CHECKS_KEY, None)
        records = list(checks.records) if checks is not None else []
        key = baseline_key(item.path, item.nodeid)
        report.conformance_test_key = key  # type: ignore[attr-defined]
        declared = declared_requirements(item)
        if report.when == "setup":
            props = [("requirement", rid) for rid in declared]
            props += [("requirement_level", f"{rid}={self.requirement(rid).level}") for rid in declared if self.requirement(rid)]
            item.user_properties.extend(props)
            report.user_properties.extend(props)
            if self.allure is not None:
                self.allure.label(item, declared)
        if report.failed:
            self._classify(item, call, report, records, key)
        if report.when == "teardown":
            for rid in dict.fromkeys(r.requirement for r in records):
                outcome, _ = fold([r for r in records if r.requirement == rid], lambda r: self._reason(r, key))
                report.user_properties.append(("requirement_outcome", f"{rid}={outcome}"))
            if _BASELINE_KEY in item.stash:
                report.user_properties.append(("baseline", item.stash[_BASELINE_KEY]))
            if self.allure is not None:
                self.allure.attach(item)
        self._redact(report)
        return report

    def _classify(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, records: list[Record], key: str) -> None:
        exc = call.excinfo.value if call.excinfo is not None else None
        # A FAIL is a failure some record explains: a broken check, soft failures the
        # plugin turned into a failed test, or a transport error the plugin recorded
        # against the test's requirements. Anything else is the suite's ERROR.
        # A skip here is a test that stopped after its checks failed ("blocked by ...");
        # the plugin made it a failure (conformance.plugin._surface_failures).
        explained = any(r.outcome is Outcome.FAIL for r in records)
        stopped = isinstance(exc, pytest.skip.Exception)
        if not (explained and (exc is None or stopped or _server_failure(exc))):
            report.conformance_outcome = "ERROR"  # type: ignore[attr-defined]
            report.conformance_error = self.redactor.redact(_describe(call.excinfo, report))  # type: ignore[attr-defined]
            return
        used = self.baseline.excuse(records, key)
        if used:
            # The baseline's XFAIL: what pytest's skipping plugin does for an xfail
            # mark, done by hand so that --strict / strict_xfail cannot change it.
            reason = "baseline: " + "; ".join(f"{e.key}: {e.reason}" for e in used)
            report.outcome = "skipped"
            report.wasxfail = reason
            report.conformance_outcome = XFAIL  # type: ignore[attr-defined]
            item.stash[_BASELINE_KEY] = reason
            return
        report.conformance_outcome = str(Outcome.FAIL)  # type: ignore[attr-defined]
        _move_reproduction(report)

    def _reason(self, record: Record, key: str) -> str | None:
        entry = self.baseline.covering(record.requirement, key)
        return entry.reason if entry is not None else None

    def _redact(self, report: pytest.TestReport) -> None:
        """The terminal's copy: a secret in a traceback (``--showlocals``, a
        hypothesis example) or a captured section is replaced before any reporter
        -- or an xdist channel -- sees the report."""
        if not self.redactor:
            return
        r = self.redactor
        report.sections = [(r.redact(name), r.redact(text)) for name, text in report.sections]
        if report.longrepr is not None and r.contains_secret(report.longreprtext):
            # In place, so the traceback keeps its layout and its crash line (the
            # short summary and JUnit's message read it); as flat text if that missed.
            report.longrepr = _redact_tree(report.longrepr, r.redact)
            if r.contains_secret(text := report.longreprtext):
                report.longrepr = r.redact(text)
        if hasattr(report, "wasxfail"):
            report.wasxfail = r.redact(report.wasxfail)

    # ---- the controller: every report of every worker

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.controller:
            return
        nodeid = report.nodeid
        self.keys[nodeid] = getattr(report, "conformance_test_key", nodeid)
        outcome = getattr(report, "conformance_outcome", None)
        if report.when == "call" and (report.passed or report.failed or outcome == XFAIL):
            self.ran.add(nodeid)
        if report.failed and outcome != str(Outcome.FAIL):
            message = getattr(report, "conformance_error", None) or self.redactor.redact(_crash_line(report))
            self.errors.append((nodeid, report.when, message))
        previous = self.test_outcomes.get(nodeid)
        if report.failed:
            self.test_outcomes[nodeid] = "error" if outcome != str(Outcome.FAIL) else "failed"
        elif outcome == XFAIL or hasattr(report, "wasxfail"):
            self.test_outcomes[nodeid] = "xfailed" if report.skipped else "xpassed"
        elif previous is None or previous == "passed":
            self.test_outcomes[nodeid] = report.outcome

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self.controller and report.failed:
            self.errors.append((report.nodeid or "<collection>", "collect", self.redactor.redact(_crash_line(report))))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Any:
        # Outermost wrapper: the verdict exists before junitxml and pytest-html write
        # (they embed it), and the verdict line is printed after pytest's stats line.
        concluded = self.controller and not self.config.option.collectonly
        if concluded:
            self.conclude(session)
        result = yield
        if concluded:
            self.write_results()
            self.redact_artifacts()
            self.print_verdict()
        return result

    def conclude(self, session: pytest.Session) -> None:
        records = list(self.run.records)
        levels = {rid: req.level for rid, req in self.catalogue.items()}
        self.results = requirement_results(
            records, levels, self.profile_ids(), lambda r: self._reason(r, self.keys.get(r.nodeid, r.nodeid))
        )
        judged = {r.nodeid for r in records if r.outcome is not Outcome.SKIP}
        errored = {nodeid for nodeid, _, _ in self.errors}
        self.statuses = entry_statuses(self.baseline, records, self.keys, self.ran | judged, errored)
        stale = [e.key for e, s in self.statuses.items() if s is EntryStatus.STALE]
        errors = [f"{nodeid} ({when}): {message}" for nodeid, when, message in self.errors]
        verdict = judge(self.results, self.must_ids(), errors, stale)
        status = int(session.exitstatus)
        if status == pytest.ExitCode.TESTS_FAILED and exit_code(0, verdict) == 0:
            # pytest counted a failure that no record and no report explains: never
            # let the gate pass on it.
            self.errors.append(("<session>", "run", "pytest reported a failure that no conformance record explains"))
            errors = [f"{nodeid} ({when}): {message}" for nodeid, when, message in self.errors]
            verdict = judge(self.results, self.must_ids(), errors, stale)
        self.verdict = verdict
        self.time_split = self._time_split()
        self._report_unshown_failures()
        self.exit_code = exit_code(status, verdict)
        session.exitstatus = self.exit_code
        self._junit_properties()
        if self.compared_to is not None:
            results = self.report_paths().get("results")
            self.comparison = compare(
                self.compared_to, self.results_document(),
                old_path=str(Path(str(self.settings.compare_to)).resolve()), new_path=None if results is None else str(results),
            )

    def _time_split(self) -> Any:
        """Where the run's time went, from the plugin's run object (it counts what the
        pacer, the streams and the rate-limit phase spent: ``conformance.run.timing``);
        None when it keeps no such count."""
        split = getattr(self.run, "time_split", None)
        return split(time.time() - self.started) if callable(split) else None

    def _report_unshown_failures(self) -> None:
        """The guard behind the plugin's rule that a test with a failed check fails
        (conformance.plugin._surface_failures): a requirement that FAILs outside the
        baseline while none of the tests that failed it ended failed gets a failing
        test of its own, SYNTHETIC_NODEID, so that the terminal's summary line, JUnit
        and every report show the failure the verdict counts."""
        assert self.verdict is not None
        unshown = []
        for rid in (*self.verdict.failing, *self.verdict.failing_other):
            nodes = [nodeid for nodeid, outcome in self.results[rid].tests if outcome == str(Outcome.FAIL)]
            if not any(self.test_outcomes.get(nodeid) in ("failed", "error") for nodeid in nodes):
                unshown.append(rid)
        if not unshown:
            return
        texts = []
        for rid in unshown:
            first = next(r for r in self.results[rid].findings if r.outcome is Outcome.FAIL)
            req = self.requirement(rid)
            texts.append(format_record(first, req.quote if req else "", req.gloss if req else "") + f"\n  test:     {first.nodeid}")
        report = pytest.TestReport(
            nodeid=SYNTHETIC_NODEID,
            location=(SYNTHETIC_NODEID.split("::")[0], None, SYNTHETIC_NODEID.split("::")[1]),
            keywords={},
            outcome="failed",
            longrepr=self.redactor.redact(
                f"{', '.join(unshown)} FAILed but no test that judged them ended failed\n\n" + "\n\n".join(texts)
            ),
            when="call",
            user_properties=[("requirement", rid) for rid in unshown],
        )
        report.conformance_outcome = str(Outcome.FAIL)  # type: ignore[attr-defined]
        self.config.hook.pytest_runtest_logreport(report=report)

    def _junit_properties(self) -> None:
        from _pytest.junitxml import (
            xml_key,  # no public accessor for the LogXML instance
        )

        xml = self.config.stash.get(xml_key, None)
        if xml is None or self.verdict is None:
            return
        for name, value in (
            ("conformance_verdict", self.verdict.line),
            ("conformance_exit_code", self.exit_code),
            ("conformance_target", self.settings.target_url),
            ("conformance_profile", self.settings.profile),
            ("suite_version", suite_provenance()["version"]),
            ("catalogue_sha256", self.catalogue.sha256),
            ("spec_sha256", self.spec_sha256()),
        ):
            xml.add_global_property(name, self.redactor.redact(str(value)))

    # ---- terminal

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.controller or self.verdict is None:
            return
        tr, v = terminalreporter, self.verdict
        if self.comparison is not None:
            tr.section("conformance: compared to an earlier run")
            for line in format_text(self.comparison).splitlines():
                tr.write_line(self.redactor.redact(line))
        tr.section("conformance: certification")
        for rid in v.failing + v.failing_other:
            result = self.results[rid]
            first = next((r for r in result.findings if r.outcome is Outcome.FAIL), None)
            req = self.requirement(rid)
            if first is not None:
                tr.write_line(self.redactor.redact(format_record(first, req.quote if req else "", req.gloss if req else "")))
                tr.write_line(f"  test:     {first.nodeid}" + (f" (and {len(result.tests) - 1} more)" if len(result.tests) > 1 else ""))
        if v.not_run:
            tr.write_line(f"MUST requirements not run ({len(v.not_run)}): {', '.join(v.not_run)}")
        for error in v.errors:
            tr.write_line(f"ERROR {error}", red=True)
        if self.baseline:
            counts = Counter(self.statuses.values())
            tr.write_line(
                f"baseline {self.baseline.path}: {len(self.baseline.entries)} entries; "
                + ", ".join(f"{counts[s]} {s}" for s in EntryStatus)
            )
            for entry, status in self.statuses.items():
                if status is EntryStatus.STALE:
                    tr.write_line(f"  STALE {entry.key} ({entry.reason}): it ran and every check held; remove the entry", red=True)
                elif tr.verbosity > 0:
                    tr.write_line(f"  {status} {entry.key} ({entry.reason})")
        if self.time_split is not None:
            tr.write_line(self.time_split.line())
        if self.report_dir is not None:
            tr.write_line(f"reports in {self.report_dir}: " + ", ".join(self.written_reports()))

    def print_verdict(self) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or self.verdict is None:
            return
        colour = {Status.CONFORMANT: "green", Status.NOT_CONFORMANT: "red"}.get(self.verdict.status, "yellow")
        tr.write_line(self.verdict.line, **{colour: True, "bold": True})

    # ---- files

    def report_paths(self) -> dict[str, Path]:
        """Every report file this run writes (or a folder, for Allure)."""
        option = self.config.option
        paths = {
            "junit": getattr(option, "xmlpath", None),
            "html": getattr(option, "htmlpath", None),
            "allure": getattr(option, "allure_report_dir", None),
        }
        found = {name: (self.config.invocation_params.dir / p).resolve() for name, p in paths.items() if p}
        if self.report_dir is not None:
            found["results"] = self.report_dir / REPORT_FILES["results"]
        return found

    def written_reports(self) -> list[str]:
        shown = []
        for name, path in self.report_paths().items():
            rel = path.relative_to(self.report_dir) if self.report_dir and path.is_relative_to(self.report_dir) else path
            shown.append(f"{rel}{'/' if name == 'allure' else ''} ({name})")
        return shown

    def results_document(self) -> dict[str, Any]:
        """The content of results.json (see schemas/reporting/results.schema.json)."""
        assert self.verdict is not None
        finished = time.time()
        settings = self.settings
        seed = self.config.getoption("hypothesis_seed", None)
        entries = [
            {**({"requirement": e.requirement} if e.requirement else {"test": e.test}), "reason": e.reason, "status": str(self.statuses.get(e, EntryStatus.NOT_RUN))}
            for e in self.baseline.entries
        ]
        return {
            "format_version": FORMAT_VERSION,
            "suite": suite_provenance(),
            "catalogue_sha256": self.catalogue.sha256,
            "spec_sha256": self.spec_sha256(),
            "profile": settings.profile,
            "strict": settings.strict,
            "target": {
                "url": settings.target_url,
                "embedded": settings.embedded,
                "server_headers": _headers(getattr(self.run, "server_headers", None)),
            },
            "options": effective_options(settings),
            "option_sources": dict(settings.sources),
            "command": [str(a) for a in self.config.invocation_params.args],
            "hypothesis_seed": None if seed is None else str(seed),
            "started_at": _utc(self.started),
            "finished_at": _utc(finished),
            "duration_seconds": round(finished - self.started, 3),
            "timing": None if self.time_split is None else self.time_split.to_dict(),
            "baseline": None if self.baseline.path is None else {"path": self.baseline.path, "sha256": self.baseline.sha256, "entries": entries},
            "verdict": self.verdict.to_dict(),
            "exit_code": self.exit_code,
            "tests": dict(sorted(Counter(self.test_outcomes.values()).items())),
            "errors": [{"nodeid": n, "when": w, "message": m} for n, w, m in self.errors],
            "requirements": [self._requirement_entry(result) for result in self.results.values()],
            "reports": {name: str(path) for name, path in self.report_paths().items()},
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
        }

    def _requirement_entry(self, result: RequirementResult) -> dict[str, Any]:
        req = self.requirement(result.id)
        return {
            "id": result.id,
            "level": result.level,
            "area": getattr(req, "area", None),
            "endpoint": getattr(req, "endpoint", None),
            "gloss": getattr(req, "gloss", None),
            "outcome": result.outcome,
            "baseline_reasons": list(result.baseline_reasons),
            "tests": [{"nodeid": n, "outcome": o} for n, o in result.tests],
            "findings": [
                {k: v for k, v in r.to_dict().items() if k not in ("requirement", "level")}
                for r in result.findings[:_FINDINGS_PER_REQUIREMENT]
            ],
            "findings_omitted": max(0, len(result.findings) - _FINDINGS_PER_REQUIREMENT),
        }

    def write_results(self) -> None:
        if self.report_dir is None or self.verdict is None:
            return
        text = json.dumps(self.results_document(), indent=2, ensure_ascii=False) + "\n"
        (self.report_dir / REPORT_FILES["results"]).write_text(self.redactor.redact(text), encoding="utf-8")

    def redact_artifacts(self) -> None:
        """The last line of defence: every report file passes through the redactor
        after its writer is done (pytest-html and junitxml write in their
        sessionfinish, which this wrapper encloses; Allure writes per test)."""
        if not self.redactor:
            return
        for path in self.report_paths().values():
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                if file.is_file():
                    data = file.read_bytes()
                    clean = self.redactor.redact_bytes(data)
                    if clean != data:
                        file.write_bytes(clean)


def _redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    """Redact every string of a failure representation (pytest's TerminalRepr
    dataclasses: traceback entries, locals, function arguments, crash line)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        value[:] = [_redact_tree(v, redact) for v in value]
    elif isinstance(value, tuple):
        return tuple(_redact_tree(v, redact) for v in value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            setattr(value, f.name, _redact_tree(getattr(value, f.name), redact))
    return value


def _headers(headers: Any) -> dict[str, str] | None:
    if not headers:
        return None
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k): str(v) for k, v in items}


def _move_reproduction(report: pytest.TestReport) -> None:
    """Put the plugin's "Reproduce with" section into the failure text itself, so
    that it reaches JUnit's <failure> (which carries no custom sections) and shows
    in the terminal whatever ``--show-capture`` says."""
    index = next((i for i, (name, _) in enumerate(report.sections) if name == REPRODUCE_SECTION), None)
    if index is None:
        return
    _, script = report.sections[index]
    longrepr = report.longrepr
    addsection = getattr(longrepr, "addsection", None)  # pytest's ExceptionRepr
    if callable(addsection):
        addsection(REPRODUCE_SECTION, script)
    elif isinstance(longrepr, str):
        report.longrepr = f"{longrepr}\n\n{' ' + REPRODUCE_SECTION + ' ':-^80}\n{script}"
    else:
        return
    del report.sections[index]


PLUGIN_NAME = "conformance-report"


def install(config: pytest.Config, run: Any) -> CertificationReporter:
    """Create the reporter for ``run`` and register it; idempotent. Call it from the
    plugin's ``pytest_configure``, in the controller and in every xdist worker,
    once the settings are in ``config.stash`` -- and before junitxml, pytest-html
    and allure-pytest configure themselves (so: a ``tryfirst`` configure)."""
    existing = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(existing, CertificationReporter):
        return existing
    reporter = CertificationReporter(config, run)
    config.pluginmanager.register(reporter, PLUGIN_NAME)
    return reporter
