"""The expected-failures baseline: parsing, validation, unknown ids, excuses, staleness.

End-to-end behaviour (XFAIL in every report, exit codes) is in test_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from conformance.oracle.outcomes import Outcome, Record
from conformance.reporting.baseline import (
    Baseline,
    BaselineError,
    Entry,
    EntryStatus,
    baseline_key,
    entry_statuses,
    load_baseline,
    report_schema,
)

KNOWN = {"CHAT-001", "CHAT-SSE-004", "BOT-CREATE-001"}

SUITE_MODULE = '''
import pytest

def test_plain():
    pass

@pytest.mark.parametrize("x", [1, 2])
def test_params(x):
    pass

class TestGroup:
    def test_member(self):
        pass

test_made = make_test()
'''


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A stand-in for the conformance package: suite/test_demo.py."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_demo.py").write_text(SUITE_MODULE, encoding="utf-8")
    return tmp_path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baseline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, package: Path, text: str) -> Baseline:
    return load_baseline(write(tmp_path, text), KNOWN, package_dir=package)


# --------------------------------------------------------------------------- parsing


def test_a_valid_file_loads_every_entry_in_order(tmp_path: Path, package: Path) -> None:
    baseline = load(tmp_path, package, '''
format_version = 1

[[expected]]
requirement = "CHAT-SSE-004"
reason = "deltas are not joined yet (ISSUE-123)"

[[expected]]
test = "conformance/suite/test_demo.py::test_params[2]"
reason = "  trailing blanks are trimmed  "

[[expected]]
test = "suite/test_demo.py::TestGroup::test_member"
reason = "r"
''')
    assert baseline.entries == (
        Entry(reason="deltas are not joined yet (ISSUE-123)", requirement="CHAT-SSE-004"),
        Entry(reason="trailing blanks are trimmed", test="suite/test_demo.py::test_params[2]"),
        Entry(reason="r", test="suite/test_demo.py::TestGroup::test_member"),
    )
    assert baseline.sha256 is not None and len(baseline.sha256) == 64
    assert bool(baseline) and not Baseline()


def test_an_empty_list_is_an_empty_baseline(tmp_path: Path, package: Path) -> None:
    assert not load(tmp_path, package, "expected = []\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[expected]]\nrequirement = 'CHAT-001'\n", r"entry 1: 'reason' is a required property", id="no-reason"),
        pytest.param("[[expected]]\nrequirement = 'CHAT-001'\nreason = '  '\n", r"entry 1: '  ' does not match", id="blank-reason"),
        pytest.param("[[expected]]\nreason = 'r'\n", r"entry 1: needs exactly one of .requirement. or .test.$", id="neither-id"),
        pytest.param(
            "[[expected]]\nrequirement = 'CHAT-001'\ntest = 'suite/test_demo.py::test_plain'\nreason = 'r'\n",
            r"entry 1: needs exactly one of .requirement. or .test. \(it has both\)", id="both-ids",
        ),
        pytest.param("[[expected]]\nrequirement = 'chat-1'\nreason = 'r'\n", r"entry 1: 'chat-1' does not match", id="malformed-id"),
        pytest.param("[[expected]]\ntest = 'test_plain'\nreason = 'r'\n", r"entry 1: 'test_plain' does not match", id="test-without-file"),
        pytest.param("[[expected]]\nrequirement = 'CHAT-001'\nreason = 'r'\nticket = 7\n", r"Additional properties", id="unknown-key"),
        pytest.param("[[failures]]\nrequirement = 'CHAT-001'\n", r"'expected' is a required property", id="wrong-table"),
        pytest.param("expected = []\nformat_version = 2\n", r"format_version: 1 was expected", id="future-version"),
    ],
)
def test_a_file_that_breaks_the_schema_is_a_usage_error(tmp_path: Path, package: Path, text: str, message: str) -> None:
    with pytest.raises(BaselineError, match=r"--expected-failures .*baseline\.toml: does not match baseline\.schema\.json:") as excinfo:
        load(tmp_path, package, text)
    assert excinfo.match(message)
    assert isinstance(excinfo.value, pytest.UsageError)  # pytest exits with code 4


def test_not_toml_is_a_usage_error(tmp_path: Path, package: Path) -> None:
    with pytest.raises(BaselineError, match=r"not valid UTF-8 TOML"):
        load(tmp_path, package, "[[expected]\n")


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"cannot read"):
        load_baseline(tmp_path / "nope.toml", KNOWN)


# --------------------------------------------------------------------------- unknown ids


def test_an_unknown_requirement_id_is_a_usage_error_with_a_suggestion(tmp_path: Path, package: Path) -> None:
    with pytest.raises(BaselineError, match=r"entry 1: unknown requirement id 'CHAT-SSE-040' \(did you mean CHAT-SSE-004\?\)"):
        load(tmp_path, package, "[[expected]]\nrequirement = 'CHAT-SSE-040'\nreason = 'r'\n")


@pytest.mark.parametrize(
    ("test", "why"),
    [
        pytest.param("suite/test_other.py::test_plain", "no file suite/test_other.py", id="no-file"),
        pytest.param("suite/test_demo.py::test_plian", "defines no test_plian", id="no-function"),
        pytest.param("suite/test_demo.py::TestGroup::test_absent", "defines no TestGroup::test_absent", id="no-method"),
        pytest.param("suite/test_demo.py::test_plain::test_x", "test_plain in suite/test_demo.py is not a class", id="not-a-class"),
    ],
)
def test_an_unknown_test_id_is_a_usage_error(tmp_path: Path, package: Path, test: str, why: str) -> None:
    with pytest.raises(BaselineError, match=rf"entry 1: unknown test '{test}': .*{why}"):
        load(tmp_path, package, f"[[expected]]\ntest = '{test}'\nreason = 'r'\n")


@pytest.mark.parametrize(
    "test",
    [
        "suite/test_demo.py::test_plain",
        "suite/test_demo.py::test_params",
        "suite/test_demo.py::test_params[1]",
        "suite/test_demo.py::test_params[a parameter that never ran]",
        "suite/test_demo.py::TestGroup::test_member",
        "suite/test_demo.py::test_made",
    ],
)
def test_a_test_defined_in_the_source_is_known(tmp_path: Path, package: Path, test: str) -> None:
    # Judged from the source, not the collection: a run of one module must not call
    # the entries of the others unknown. An unmatched parameter is "not run" later.
    assert load(tmp_path, package, f"[[expected]]\ntest = '{test}'\nreason = 'r'\n").entries[0].test == test


def test_every_problem_is_listed_at_once(tmp_path: Path, package: Path) -> None:
    text = (
        "[[expected]]\nrequirement = 'CHAT-009'\nreason = 'r'\n"
        "[[expected]]\ntest = 'suite/test_demo.py::test_nope'\nreason = 'r'\n"
        "[[expected]]\nrequirement = 'CHAT-001'\nreason = 'r'\n"
        "[[expected]]\nrequirement = 'CHAT-001'\nreason = 'again'\n"
    )
    with pytest.raises(BaselineError) as excinfo:
        load(tmp_path, package, text)
    message = str(excinfo.value)
    assert "entry 1: unknown requirement id 'CHAT-009'" in message
    assert "entry 2: unknown test" in message
    assert "entry 4: duplicate requirement CHAT-001 (first in entry 3)" in message


def test_the_packaged_suite_is_where_test_ids_are_looked_up(tmp_path: Path) -> None:
    # By default test ids are looked up in the installed conformance package.
    with pytest.raises(BaselineError, match=r"no file suite/test_no_such_module\.py in the conformance package"):
        load_baseline(write(tmp_path, "[[expected]]\ntest = 'suite/test_no_such_module.py::test_x'\nreason = 'r'\n"), KNOWN)


# --------------------------------------------------------------------------- keys and excuses


def test_baseline_key_is_relative_to_the_package_whatever_the_rootdir() -> None:
    package = Path(__file__).resolve().parent.parent / "conformance"
    key = baseline_key(package / "suite" / "test_chat.py", "../../somewhere/conformance/suite/test_chat.py::test_x[json]")
    assert key == "suite/test_chat.py::test_x[json]"
    # Outside the package (the project's own tests) the node id is kept as it is.
    assert baseline_key(Path(__file__), "tests/test_baseline.py::test_y") == "tests/test_baseline.py::test_y"


@pytest.mark.parametrize(
    ("entry", "requirement", "key", "covered"),
    [
        pytest.param(Entry("r", requirement="CHAT-001"), "CHAT-001", "suite/t.py::test_a", True, id="requirement"),
        pytest.param(Entry("r", requirement="CHAT-001"), "CHAT-002", "suite/t.py::test_a", False, id="other-requirement"),
        pytest.param(Entry("r", test="suite/t.py::test_a"), "CHAT-002", "suite/t.py::test_a", True, id="test"),
        pytest.param(Entry("r", test="suite/t.py::test_a"), "CHAT-002", "suite/t.py::test_a[x-1]", True, id="all-parameters"),
        pytest.param(Entry("r", test="suite/t.py::test_a[x-1]"), "CHAT-002", "suite/t.py::test_a[x-2]", False, id="other-parameter"),
        pytest.param(Entry("r", test="suite/t.py::test_a"), "CHAT-002", "suite/t.py::test_ab", False, id="prefix-is-not-a-match"),
    ],
)
def test_what_an_entry_covers(entry: Entry, requirement: str, key: str, covered: bool) -> None:
    assert entry.covers(requirement, key) is covered


def rec(requirement: str, outcome: Outcome, nodeid: str = "n1", level: str = "MUST") -> Record:
    return Record(requirement, level, outcome, nodeid=nodeid)


def test_a_test_is_excused_only_when_every_failure_is_listed() -> None:
    a, b = Entry("ra", requirement="A"), Entry("rb", test="suite/t.py::test_x")
    baseline = Baseline((a, b))
    both = [rec("A", Outcome.FAIL), rec("C", Outcome.FAIL), rec("D", Outcome.PASS)]
    assert baseline.excuse(both, "suite/t.py::test_x") == [a, b]  # A by id, C by the test entry
    assert baseline.excuse(both, "suite/t.py::test_y") is None  # C is not listed for test_y
    assert baseline.excuse([rec("A", Outcome.PASS)], "suite/t.py::test_y") is None  # nothing to excuse


# --------------------------------------------------------------------------- statuses


def statuses(entries: tuple[Entry, ...], records: list[Record], ran: set[str], errored: set[str]) -> list[EntryStatus]:
    keys = {n: f"suite/t.py::{n}" for n in ("n1", "n2", "n3")}
    result = entry_statuses(Baseline(entries), records, keys, ran, errored)
    return [result[e] for e in entries]


@pytest.mark.parametrize(
    ("records", "ran", "errored", "expected"),
    [
        pytest.param([rec("A", Outcome.FAIL)], {"n1"}, set(), EntryStatus.MATCHED, id="failing-check"),
        pytest.param([rec("A", Outcome.PASS), rec("A", Outcome.FAIL, "n2")], {"n1", "n2"}, set(), EntryStatus.MATCHED, id="one-of-several"),
        pytest.param([rec("A", Outcome.WARN, level="SHOULD")], {"n1"}, set(), EntryStatus.MATCHED, id="a-warning-is-a-failing-check"),
        pytest.param([rec("A", Outcome.PASS), rec("A", Outcome.PASS, "n2")], {"n1", "n2"}, set(), EntryStatus.STALE, id="every-check-held"),
        pytest.param([], set(), set(), EntryStatus.NOT_RUN, id="never-judged"),
        pytest.param([rec("A", Outcome.SKIP)], {"n1"}, set(), EntryStatus.NOT_RUN, id="only-skipped"),
        pytest.param([rec("A", Outcome.PASS)], {"n1"}, {"n1"}, EntryStatus.NOT_RUN, id="an-error-may-hide-the-failure"),
    ],
)
def test_requirement_entry_status(records: list[Record], ran: set[str], errored: set[str], expected: EntryStatus) -> None:
    assert statuses((Entry("r", requirement="A"),), records, ran, errored) == [expected]


@pytest.mark.parametrize(
    ("records", "ran", "errored", "expected"),
    [
        pytest.param([rec("X", Outcome.FAIL)], {"n1"}, set(), EntryStatus.MATCHED, id="failing-check"),
        pytest.param([rec("X", Outcome.PASS)], {"n1"}, set(), EntryStatus.STALE, id="every-check-held"),
        pytest.param([], {"n1"}, set(), EntryStatus.STALE, id="passed-without-checks"),
        pytest.param([], {"n2"}, set(), EntryStatus.NOT_RUN, id="other-test-ran"),
        pytest.param([rec("X", Outcome.PASS)], {"n1"}, {"n1"}, EntryStatus.NOT_RUN, id="errored"),
    ],
)
def test_test_entry_status(records: list[Record], ran: set[str], errored: set[str], expected: EntryStatus) -> None:
    assert statuses((Entry("r", test="suite/t.py::n1"),), records, ran, errored) == [expected]


# --------------------------------------------------------------------------- the schema itself


def test_the_schema_is_valid_and_its_examples_load(tmp_path: Path, package: Path) -> None:
    schema = report_schema("baseline")
    Draft202012Validator.check_schema(schema)
    for example in schema["examples"]:
        assert not list(Draft202012Validator(schema).iter_errors(example))
    assert json.loads(json.dumps(schema)) == schema
