"""The runs: one job per subject and mode, each a subprocess that starts the subject's
server in-process and runs the suite against it with ``pytest.main``; and the pool
that runs them a few at a time."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.killmatrix.judge import RunResult
from tools.killmatrix.plan import (
    BASE_KNOBS,
    FAIL,
    GENERATED_PREFIX,
    INDEPENDENT,
    JOB_PYTEST_ARGS,
    JUNIT_FILE,
    MATRIX_LIMITS,
    RESULTS_FILE,
    ROOT,
    RUN_FILE,
    RUN_TIMEOUT,
    RUNS,
    WARN,
    RunSpec,
    Subject,
    subjects,
)


def _fresh_principals() -> list[tuple[str, str, str]]:
    """(name, api_key, session_key) of two principals with fresh random secrets."""
    return [(name, secrets.token_urlsafe(18), secrets.token_urlsafe(18)) for name in ("alice", "bob")]


@contextlib.contextmanager
def _serve(subject: Subject) -> Iterator[dict[str, str]]:
    """Start the subject's server, in its profile's dialect; yield the COZE_* environment
    of the suite."""
    people = _fresh_principals()
    runs = RUNS[subject.profile]
    #: (email, password) per principal where the dialect logs in (studio: AUTH-008 runs).
    logins: list[tuple[str, str]] = []
    if subject.server == INDEPENDENT:
        from tests.independent.server import FixedWindowLimiter, IndependentServer

        # The dialect said, never left to INDEPENDENT_DIALECT of the caller's environment.
        server = IndependentServer(
            principals={n: (k, s) for n, k, s in people}, token_delay=float(BASE_KNOBS["token_delay"]), dialect=runs.dialect
        )
        if runs.dialect == "doc":
            # The page's minute-long window would make the rate-limit phase wait a minute
            # for its budget; the server's own limiter with the matrix's short window instead.
            # (The coze dialect has no limiter.)
            server.limiter = FixedWindowLimiter(MATRIX_LIMITS, window=float(BASE_KNOBS["rate_window"]))
        server.start()
        stop: Callable[[], None] = server.stop
        url = server.url
        if runs.dialect == "studio":
            # Its principals log in with emails and passwords derived from their names.
            from tests.independent.studio_dialect import account

            logins = [(account(n).email, account(n).password) for n, _, _ in people]
    else:
        from conformance.reference import PrincipalConfig, ReferenceServer, ServerConfig

        config = ServerConfig(
            principals=tuple(PrincipalConfig(n, k, s) for n, k, s in people),
            dialect=runs.dialect,
            **{**runs.knobs, **subject.knobs},
        )
        ref = ReferenceServer(config).start()
        stop, url = ref.stop, ref.url
        from conformance.reference.config import LOGIN_DIALECTS

        if runs.dialect in LOGIN_DIALECTS:
            logins = [(p.email, p.password) for p in config.principals]
    try:
        (_, k1, s1), (_, k2, s2) = people
        yield {
            "COZE_TARGET_URL": url,
            "COZE_API_KEY": k1,
            "COZE_SESSION_KEY": s1,
            "COZE_API_KEY_2": k2,
            "COZE_SESSION_KEY_2": s2,
            **{
                f"COZE_{what}{suffix}": value
                for suffix, login in zip(("", "_2"), logins, strict=False)
                for what, value in zip(("EMAIL", "PASSWORD"), login, strict=True)
            },
        }
    finally:
        stop()


class _Recorder:
    """A pytest plugin of the job: the suite tests the run collected (results.json
    names only the tests that judged something)."""

    def __init__(self) -> None:
        self.collected: list[str] = []

    def pytest_collection_finish(self, session: Any) -> None:
        from conformance.keys import SUITE_DIR

        self.collected = [item.nodeid for item in session.items if SUITE_DIR in Path(str(item.path)).resolve().parents]


def _junit_failing(path: Path, known: Iterable[str]) -> dict[str, list[str]]:
    """The failed or errored test cases of a JUnit file ("classname::name"), each with
    the ids of ``known`` that its failure's message and text name."""
    import xml.etree.ElementTree as ET

    # An id as a whole word: CHAT-RESP-001, not a prefix of CHAT-RESP-0010.
    patterns = {rid: re.compile(rf"(?<![\w-]){re.escape(rid)}(?![\w-])") for rid in known}
    failing: dict[str, list[str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        bad = [child for child in case if child.tag in ("failure", "error")]
        if bad:
            text = "\n".join(f"{child.get('message') or ''}\n{child.text or ''}" for child in bad)
            key = f"{case.get('classname') or ''}::{case.get('name') or ''}"
            named = {rid for rid, pattern in patterns.items() if pattern.search(text)}
            failing[key] = sorted(set(failing.get(key, ())) | named)
    return failing


def run_document(collected: Sequence[str], report_dir: Path, exit_code: int) -> dict[str, Any]:
    """run.json: from the run's results.json (conformance/reporting/certification.py), per requirement
    its outcome and its outcome in each test, the tests that ERRORed and the verdict's
    status; from its junit.xml the failing test cases and the requirements each names;
    plus the collected tests and the exit code. No results.json, or no junit.xml, is the
    run's problem."""
    document: dict[str, Any] = {"exit_code": exit_code, "collected": list(collected)}
    results_path = report_dir / RESULTS_FILE
    if not results_path.is_file():
        document["problem"] = f"the suite wrote no {RESULTS_FILE} (exit {exit_code})"
        return document
    results = json.loads(results_path.read_text(encoding="utf-8"))
    document["requirements"] = [
        {"id": r["id"], "outcome": r["outcome"], "tests": r.get("tests", [])} for r in results["requirements"]
    ]
    document["errors"] = [f"{e['nodeid']} ({e['when']}): {e['message']}" for e in results.get("errors", [])]
    document["status"] = results.get("verdict", {}).get("status")
    junit_path = report_dir / JUNIT_FILE
    if not junit_path.is_file():
        document["problem"] = f"the suite wrote no {JUNIT_FILE} (exit {exit_code})"
        return document
    document["junit"] = {"failing": _junit_failing(junit_path, (r["id"] for r in results["requirements"]))}
    return document


def run_job(spec: RunSpec, report_dir: Path) -> int:
    """One run in this process: the subject's server, then the suite against it."""
    import pytest

    # Deriving the generated variants costs half a second: only a generated run needs them.
    subject = subjects(generated=None if spec.subject.startswith(GENERATED_PREFIX) else ())[spec.subject]
    report_dir.mkdir(parents=True, exist_ok=True)
    for name in [n for n in os.environ if n.startswith("COZE_") or n == "PYTEST_ADDOPTS"]:
        del os.environ[name]  # the caller's deployment settings must not leak into a run
    recorder = _Recorder()
    with _serve(subject) as env:
        os.environ.update(env)
        # A base temp dir of its own: concurrent runs numbering and pruning folders in
        # the shared /tmp/pytest-of-<user> race, and a lost race is a ResourceWarning
        # (pytest's find_prefixed) that filterwarnings=error turns into a crash.
        runs = RUNS[subject.profile]
        args = ["conformance", *JOB_PYTEST_ARGS, *runs.suite_args, "--report-dir", str(report_dir), "--basetemp", str(report_dir / "tmp")]
        if spec.strict:
            args.extend(runs.strict_args)
        code = int(pytest.main(args, plugins=[recorder]))
    document = run_document(recorder.collected, report_dir, code)
    (report_dir / RUN_FILE).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return 0





@dataclass
class _Progress:
    total: int
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self, key: str, seconds: float, result: RunResult) -> None:
        with self.lock:
            self.done += 1
            what = result.problem or f"{len(result.ids(FAIL))} FAIL, {len(result.ids(WARN))} WARN"
            sys.stderr.write(f"[{self.done:>3}/{self.total}] {key:<44} {seconds:6.1f} s  {what}\n")
            sys.stderr.flush()


def _job_environment(pycache: Path) -> dict[str, str]:
    """The jobs' environment: bytecode (pytest's rewritten modules too) cached once in
    the matrix's own folder and shared by every job -- compiling the suite and its
    libraries again in each of ~180 runs would cost about a second each."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _launch(
    spec: RunSpec, folder: Path, env: Mapping[str, str], timeout: float, live: set[subprocess.Popen[bytes]], lock: threading.Lock
) -> RunResult:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tools.killmatrix", "--job", spec.subject, "--job-dir", str(folder)]
    if spec.strict:
        command.append("--job-strict")
    with open(folder / "log.txt", "wb") as log:
        # A session of its own: a run that exceeds its bound is killed with its group.
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with lock:
            live.add(proc)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return RunResult(problem=f"timed out after {timeout:g} s (log: {folder / 'log.txt'})")
        finally:
            with lock:
                live.discard(proc)
    run_file = folder / RUN_FILE
    if proc.returncode != 0 or not run_file.is_file():
        tail = (folder / "log.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return RunResult(problem=f"the run crashed (exit {proc.returncode}): {' / '.join(tail) or 'no output'}")
    return RunResult.from_document(json.loads(run_file.read_text(encoding="utf-8")))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group this runner started for the run
    proc.wait()


def run_matrix(specs: Sequence[RunSpec], *, jobs: int, workdir: Path, timeout: float = RUN_TIMEOUT) -> dict[str, RunResult]:
    """Run every spec (``jobs`` at a time); results by :attr:`RunSpec.key`."""
    progress = _Progress(len(specs))
    env = _job_environment(workdir / "pycache")
    live: set[subprocess.Popen[bytes]] = set()
    lock = threading.Lock()

    def one(index: int, spec: RunSpec) -> tuple[str, RunResult]:
        started = time.monotonic()
        folder = workdir / f"{index:03d}-{spec.subject}{'-strict' if spec.strict else ''}"
        result = _launch(spec, folder, env, timeout, live, lock)
        progress.step(spec.key, time.monotonic() - started, result)
        return spec.key, result

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(one, i, s) for i, s in enumerate(specs)]
        return dict(f.result() for f in futures)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            running = list(live)
        for proc in running:
            _kill(proc)
        raise
    finally:
        pool.shutdown(wait=True)
