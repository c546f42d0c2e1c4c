"""The expected-failures baseline (``--expected-failures FILE``).

An implementation keeps a TOML file of the failures it knows about, each with a
reason, so that its CI fails only on what is new (the approach of the MCP
conformance suite's ``--expected-failures``)::

    [[expected]]
    requirement = "CHAT-SSE-004"
    reason = "deltas are not joined yet (ISSUE-123)"

    [[expected]]
    test = "suite/test_chat.py::test_stream_events[json]"
    reason = "..."

* A listed failure becomes XFAIL -- through the reporter's own rewrite of the test
  report, never ``xfail(strict=True)``, whose behaviour changes with ``--strict``.
* An entry whose requirement (or test) ran and whose every check held is **stale**:
  the failure is fixed, so the entry must go, and the run fails until it does.
* An entry whose requirement did not run is neither (a filtered run stays green).
* An unknown requirement id or test id is a usage error (exit code 4): a typo would
  otherwise excuse nothing, silently.

The file is validated by ``schemas/reporting/baseline.schema.json``.
"""

from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import json
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from conformance.oracle.outcomes import Outcome, Record

__all__ = [
    "PACKAGE_DIR",
    "Baseline",
    "BaselineError",
    "Entry",
    "EntryStatus",
    "entry_statuses",
    "load_baseline",
    "report_schema",
    "baseline_key",
]

#: The conformance package (baselines shipped with it are named relative to it).
PACKAGE_DIR = Path(__file__).resolve().parent.parent

# The report schemas ship as package data beside the wire schemas: in a wheel under
# conformance/schemas/, in a source tree or an editable install at the repo root.
_REPORT_SCHEMA_DIRS = (PACKAGE_DIR / "schema_files" / "reporting", PACKAGE_DIR.parent / "schemas" / "reporting")


@functools.cache
def report_schema(name: str) -> dict[str, Any]:
    """``schemas/reporting/<name>.schema.json`` (``baseline`` or ``results``)."""
    for folder in _REPORT_SCHEMA_DIRS:
        path = folder / f"{name}.schema.json"
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    raise FileNotFoundError(f"no {name}.schema.json in {', '.join(map(str, _REPORT_SCHEMA_DIRS))}")


class BaselineError(pytest.UsageError):  # type: ignore[misc]  # final for mypy; subclassed as settings.SettingsError is
    """A malformed baseline or an unknown id in it; pytest exits with code 4."""


def baseline_key(path: Path | str, nodeid: str) -> str:
    """A test's id as a baseline names it: its file relative to the conformance
    package, then the rest of its node id (``suite/test_chat.py::test_x[json]``).
    Node ids depend on pytest's rootdir (``pytest --pyargs conformance`` from
    anywhere); this does not."""
    try:
        rel = Path(path).resolve().relative_to(PACKAGE_DIR).as_posix()
    except ValueError:
        return nodeid
    _, sep, rest = nodeid.partition("::")
    return f"{rel}{sep}{rest}"


@dataclass(frozen=True)
class Entry:
    """One ``[[expected]]`` entry: a requirement id or a test id, and a reason."""

    reason: str
    requirement: str | None = None
    test: str | None = None
    #: Where the expected failure is documented ("coze-wire.md:386"), when the file says.
    source: str | None = None

    @property
    def key(self) -> str:
        return f"requirement {self.requirement}" if self.requirement else f"test {self.test}"

    def covers_test(self, key: str) -> bool:
        """A test entry names one test, or a test function and all its parameters."""
        return self.test is not None and (key == self.test or key.partition("[")[0] == self.test)

    def covers(self, requirement: str, key: str) -> bool:
        """Whether this entry excuses a failing check of ``requirement`` in test ``key``."""
        if self.requirement is not None:
            return requirement == self.requirement
        return self.covers_test(key)


class EntryStatus(StrEnum):
    MATCHED = "matched"  # it ran with a failing check: the listed failures are XFAIL
    STALE = "stale"  # it ran and every check held: remove the entry
    NOT_RUN = "not run"  # it did not run (or an error hid the outcome): neither


@dataclass(frozen=True)
class Baseline:
    """The parsed file; an empty one when no ``--expected-failures`` is given."""

    entries: tuple[Entry, ...] = ()
    path: str | None = None
    sha256: str | None = None

    def __bool__(self) -> bool:
        return bool(self.entries)

    def covering(self, requirement: str, key: str) -> Entry | None:
        return next((e for e in self.entries if e.covers(requirement, key)), None)

    def excuse(self, records: Iterable[Record], key: str) -> list[Entry] | None:
        """The entries that excuse every FAIL record of test ``key``, or None when
        some failure is not listed (or there is no failure to excuse)."""
        used: list[Entry] = []
        failures = [r for r in records if r.outcome is Outcome.FAIL]
        for record in failures:
            entry = self.covering(record.requirement, key)
            if entry is None:
                return None
            if entry not in used:
                used.append(entry)
        return used or None


def entry_statuses(
    baseline: Baseline,
    records: Iterable[Record],
    keys: Mapping[str, str],
    ran: Collection[str],
    errored: Collection[str],
) -> dict[Entry, EntryStatus]:
    """What became of each entry. ``keys`` maps node ids to baseline test keys,
    ``ran`` holds the node ids whose test body ran, ``errored`` those that ended in
    an ERROR (a suite bug: it may have hidden the failing check, so never stale).

    A WARN counts as a failing check: an entry for a SHOULD requirement excuses its
    FAIL under ``--strict`` and is not stale in a lenient run, where it only warns.
    """
    records = list(records)
    statuses: dict[Entry, EntryStatus] = {}
    for entry in baseline.entries:
        if entry.requirement is not None:
            judged = [r for r in records if r.requirement == entry.requirement and r.outcome is not Outcome.SKIP]
            tests = {r.nodeid for r in judged}
        else:
            tests = {n for n in ran if entry.covers_test(keys.get(n, n))}
            judged = [r for r in records if r.nodeid in tests]
        if any(r.outcome in (Outcome.FAIL, Outcome.WARN) for r in judged):
            statuses[entry] = EntryStatus.MATCHED
        elif not tests or tests & set(errored):
            statuses[entry] = EntryStatus.NOT_RUN
        else:
            statuses[entry] = EntryStatus.STALE
    return statuses


# --------------------------------------------------------------------------- loading


def load_baseline(path: str | Path, known_requirements: Collection[str], *, package_dir: Path = PACKAGE_DIR) -> Baseline:
    """Parse, validate and check ``path``; every problem is listed in one BaselineError."""
    where = f"--expected-failures {path}"
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BaselineError(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BaselineError(f"{where}: not valid UTF-8 TOML: {exc}") from None
    problems = _schema_problems(data)
    if problems:
        raise BaselineError(f"{where}: does not match baseline.schema.json:\n  " + "\n  ".join(problems))
    entries = tuple(_entry(item) for item in data["expected"])
    problems = _unknown_ids(entries, known_requirements, package_dir)
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, 1):
        if entry.key in seen:
            problems.append(f"entry {number}: duplicate {entry.key} (first in entry {seen[entry.key]})")
        seen.setdefault(entry.key, number)
    if problems:
        raise BaselineError(f"{where}:\n  " + "\n  ".join(problems))
    return Baseline(entries, str(path), hashlib.sha256(raw).hexdigest())


def _entry(item: Mapping[str, str]) -> Entry:
    test = item.get("test")
    if test is not None:
        test = test.removeprefix("conformance/")
    return Entry(reason=item["reason"].strip(), requirement=item.get("requirement"), test=test, source=item.get("source"))


def _schema_problems(data: Any) -> list[str]:
    validator = Draft202012Validator(report_schema("baseline"))
    problems: list[str] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        where = f"entry {path[1] + 1}" if len(path) >= 2 and path[0] == "expected" else ".".join(map(str, path)) or "top level"
        problems.extend(f"{where}: {message}" for message in _messages(error))
    return problems


def _messages(error: ValidationError) -> list[str]:
    """An entry is a oneOf of two shapes, whose own message ("not valid under any of
    the given schemas") says nothing: report the errors of the shape the entry's
    key names instead."""
    if error.validator != "oneOf" or not isinstance(error.instance, dict):
        return [error.message]
    keys = {"requirement", "test"} & set(error.instance)
    if len(keys) != 1:
        return ["needs exactly one of 'requirement' or 'test'" + (" (it has both)" if keys else "")]
    branch = 0 if keys == {"requirement"} else 1
    return [e.message for e in error.context or () if e.relative_schema_path[0] == branch] or [error.message]


def _unknown_ids(entries: Iterable[Entry], known: Collection[str], package_dir: Path) -> list[str]:
    problems: list[str] = []
    for number, entry in enumerate(entries, 1):
        if entry.requirement is not None and entry.requirement not in known:
            close = difflib.get_close_matches(entry.requirement, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"entry {number}: unknown requirement id {entry.requirement!r}{hint}")
        if entry.test is not None:
            reason = _unknown_test(entry.test, package_dir)
            if reason:
                problems.append(f"entry {number}: unknown test {entry.test!r}: {reason}")
    return problems


def _unknown_test(test: str, package_dir: Path) -> str | None:
    """Why ``test`` names no test of the suite, or None. Judged from the source
    (its file and function), not from the collection: a run of one module must not
    call the entries of the others unknown. A parameter id is not checked here; an
    entry whose parameter never ran is reported as not run."""
    file_part, _, names = test.partition("::")
    path = package_dir / file_part
    if not path.is_file():
        return f"no file {file_part} in the conformance package"
    chain = names.partition("[")[0].split("::")
    try:
        body: list[ast.stmt] = ast.parse(path.read_text(encoding="utf-8")).body
    except (SyntaxError, UnicodeDecodeError) as exc:
        return f"{file_part} does not parse: {exc}"
    for depth, name in enumerate(chain):
        node = next((n for n in body if _defines(n, name)), None)
        if node is None:
            return f"{file_part} defines no {'::'.join(chain[: depth + 1])}"
        if depth < len(chain) - 1:
            if not isinstance(node, ast.ClassDef):
                return f"{'::'.join(chain[: depth + 1])} in {file_part} is not a class"
            body = node.body
    return None


def _defines(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):  # test_x = make_test(...)
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    return False
