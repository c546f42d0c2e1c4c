"""The kill matrix's logic (tools/killmatrix/), on synthetic run results.

A full matrix run takes minutes; CI runs ``python -m tools.killmatrix --check``.
Here: the kill definition, collateral, the precision rules, the lists of unkilled
tests and unfaulted requirements, determinism of the published files, the variants'
data, the committed docs against the registries, and one small real run (``--only``).
"""

from __future__ import annotations

import importlib
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conformance.oracle.catalogue import load_catalogue
from conformance.reference import ServerConfig
from conformance.reference.faults import Fault, dialect_faults
from conformance.reference.variants import SINGLE_READINGS, Variant, all_variants
from tools import killmatrix as km
from tools.killmatrix import cli, fingerprint, jobs, sample
from tools.killmatrix.derived import generate

LEVELS = {"R-MUST": "MUST", "R-MUST-2": "MUST", "R-SHOULD": "SHOULD", "R-SHOULD-2": "SHOULD"}
T1, T2, T3 = "conformance/suite/test_a.py::test_one", "conformance/suite/test_a.py::test_two", "conformance/suite/test_b.py::test_three"


def result(
    outcomes: Mapping[str, str] | None = None,
    failing: Mapping[str, Iterable[str]] | None = None,
    *,
    tests: Iterable[str] = (T1, T2, T3),
    errors: Iterable[str] = (),
    exit_code: int | None = 0,
    problem: str | None = None,
    status: str | None = None,
    junit_failing: Mapping[str, Iterable[str]] | None = None,
) -> km.RunResult:
    outcomes = {rid: "PASS" for rid in LEVELS} | dict(outcomes or {})
    failing = dict(failing or {})
    for rid, outcome in outcomes.items():
        if outcome == "FAIL":
            failing.setdefault(rid, [T1])
    return km.RunResult(
        outcomes=outcomes,
        failing_tests={rid: frozenset(nodes) for rid, nodes in failing.items()},
        tests=frozenset(tests),
        errors=tuple(errors),
        exit_code=exit_code,
        problem=problem,
        status=status,
        junit_failing=None if junit_failing is None else {case: frozenset(ids) for case, ids in junit_failing.items()},
    )


def fault(name: str = "f", requirement: str = "R-MUST", level: str = "MUST", collateral: str | None = None) -> km.Subject:
    return km.subjects({name: Fault(name, requirement, level, "breaks it", collateral)}, {})[name]


CLEAN = km.subjects({}, {})[km.CLEAN]
PREFERRED = km.Subject("pref", "preferred", knobs={"bom": True})
ALTERNATE = km.Subject("alt", "alternate", knobs={"success_msg": "ok"}, declares=frozenset({"R-SHOULD"}))


# --------------------------------------------------------------------------- plan


def test_plan_runs_must_faults_by_default_should_faults_strict_and_the_rest_in_both_modes() -> None:
    specs = km.plan([fault("m"), fault("s", "R-SHOULD", "SHOULD"), CLEAN, ALTERNATE])
    assert [s.key for s in specs] == ["m", "s --strict", "clean", "clean --strict", "alt", "alt --strict"]


def test_plan_spreads_each_profiles_runs_evenly_over_the_order() -> None:
    coze = [replace(fault(f"c{i}"), profile="coze") for i in range(2)]
    specs = km.plan([fault("m"), fault("s", "R-SHOULD", "SHOULD"), CLEAN, ALTERNATE, *coze])
    assert [s.key for s in specs] == ["m", "s --strict", "c0", "clean", "clean --strict", "alt", "c1", "alt --strict"]
    found = km.subjects()
    every = km.plan(found.values())
    assert len(every) == len({s.key for s in every})
    coze_at = [i for i, s in enumerate(every) if found[s.subject].profile == "coze"]
    assert coze_at[0] < len(every) / 10 and coze_at[-1] > len(every) * 9 / 10


def test_subjects_hold_every_fault_and_variant_once_and_refuse_a_shared_name() -> None:
    found = km.subjects()
    generated = {g.name for g in generate()}
    assert len(generated) > 10 and all(name.startswith(km.GENERATED_PREFIX) for name in generated)
    doc = set(dialect_faults("doc")) | set(all_variants()) | generated | {km.CLEAN, km.INDEPENDENT}
    coze_variants = {name + km.COZE_VARIANT_SUFFIX for name in [*km.COZE_VARIANTS, *km.COZE_DIALECT_VARIANTS]}
    coze = set(dialect_faults("coze")) | coze_variants | {km.CLEAN_COZE, km.INDEPENDENT_COZE}
    studio_variants = {name + km.STUDIO_VARIANT_SUFFIX for name in [*km.STUDIO_VARIANTS, *km.STUDIO_DIALECT_VARIANTS]}
    studio = set(dialect_faults("studio")) | studio_variants | {km.CLEAN_STUDIO, km.INDEPENDENT_STUDIO}
    assert doc | coze | studio == set(found) and doc.isdisjoint(coze) and studio.isdisjoint(doc | coze)
    assert {name for name, s in found.items() if s.profile == "doc"} == doc
    assert {name for name, s in found.items() if s.profile == "coze"} == coze
    assert {name for name, s in found.items() if s.profile == "studio"} == studio
    # The doc profile's subjects first, then the coze profile's.
    assert [s.profile for s in found.values()] == sorted((s.profile for s in found.values()), key=km.PROFILES.index)
    assert found["stream_wrong_media_type"].knobs == {"faults": frozenset({"stream_wrong_media_type"})}
    assert found["coze_no_start_events"].knobs == {"faults": frozenset({"coze_no_start_events"})}
    assert found["coze_no_start_events"].level == "SHOULD" and found["coze_no_start_events"].profile == "coze"
    clash = Variant("f", "preferred", {"bom": True}, "", "SSE line format")
    with pytest.raises(ValueError, match="'f'"):
        km.subjects({"f": Fault("f", "R-MUST", "MUST", "")}, {"f": clash})


def test_a_coze_variant_is_a_named_variant_whose_knobs_the_coze_dialect_honours() -> None:
    found = km.subjects(generated=())
    variants = all_variants()
    assert len(km.COZE_VARIANTS) >= 3
    for name, why in km.COZE_VARIANTS.items():
        s = found[name + km.COZE_VARIANT_SUFFIX]
        v = variants[name]
        assert (s.profile, s.kind, dict(s.knobs), s.declares, s.reading) == ("coze", v.kind, dict(v.knobs), frozenset(), v.reading)
        assert set(v.knobs) <= km.COZE_KNOBS and why in s.description
        ServerConfig(dialect="coze", **{**km.RUNS["coze"].knobs, **v.knobs})
    bad = Variant("sse_split_writes", "preferred", {"line_ending": "\r\n"}, "d", "SSE line format")
    with pytest.raises(ValueError, match="does not honour"):
        km.subjects({}, {"sse_split_writes": bad}, ())


def test_a_coze_dialect_variant_is_a_preferred_coze_subject_of_coze_knobs() -> None:
    found = km.subjects({}, {}, ())
    assert len(km.COZE_DIALECT_VARIANTS) >= 8
    for name, cv in km.COZE_DIALECT_VARIANTS.items():
        s = found[name + km.COZE_VARIANT_SUFFIX]
        assert (s.profile, s.kind, dict(s.knobs), s.declares, s.reading) == ("coze", "preferred", dict(cv.knobs), frozenset(), cv.reading)
        assert set(cv.knobs) <= km.COZE_KNOBS and cv.why in s.description and cv.description in s.description
        ServerConfig(dialect="coze", **{**km.RUNS["coze"].knobs, **cv.knobs})
    bad = {"crlf": km.CozeVariant({"line_ending": "\r\n"}, "d", "w", "r")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importlib.import_module("tools.killmatrix.plan"), "COZE_DIALECT_VARIANTS", bad)
        with pytest.raises(ValueError, match="does not honour"):
            km.subjects({}, {}, ())


def _knob_value(knob: str) -> Any:
    """The value a variant (named or coze-only) gives ``knob``, alone."""
    named = [v.knobs for v in all_variants().values()]
    coze = [cv.knobs for cv in km.COZE_DIALECT_VARIANTS.values()]
    return next(knobs[knob] for knobs in [*named, *coze] if set(knobs) == {knob})


@pytest.mark.parametrize("knob", sorted(km.COZE_KNOBS - {"chunk_seed"}))
def test_every_coze_knob_changes_what_the_coze_dialect_sends(knob: str) -> None:
    """A coze variant's knobs are honoured: its server sends other bytes than the
    clean one (a knob the dialect ignored would make the variant the clean server again)."""
    assert _coze_chat_bytes({knob: _knob_value(knob)}) != _coze_chat_bytes({})


def _coze_chat_bytes(knobs: Mapping[str, Any]) -> list[bytes]:
    """The pieces a coze-dialect server writes for one streamed chat (its Content-Type
    first), then the status and body of a refused key and of an unknown bot."""
    import httpx

    from conformance.reference import PrincipalConfig, ReferenceServer

    key = "k" * 24
    config = ServerConfig(dialect="coze", principals=(PrincipalConfig("p", key, "s" * 24),), token_delay=0.0, **knobs)
    with ReferenceServer(config) as server:
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
            bot = client.post("/v1/bot/create", json={"space_id": km.EMBEDDED_SPACE_ID, "name": "b"}).json()["data"]["bot_id"]
            assert client.post("/v1/bot/publish", json={"bot_id": bot, "connector_ids": ["1024"]}).json()["code"] == 0
            body = {"bot_id": bot, "user_id": "u", "stream": True, "additional_messages": [{"role": "user", "content": "hello there", "content_type": "text"}]}
            with client.stream("POST", "/v3/chat", json=body) as answer:
                pieces = [answer.headers["content-type"].encode(), *answer.iter_raw()]
            for refused in (httpx.get(f"{server.url}/v1/bots/{bot}"), client.get("/v1/bots/123")):
                pieces += [str(refused.status_code).encode(), refused.content]
    # The ids, times and log ids differ from run to run: compare the shape of the writes.
    return [re.sub(rb"[0-9]", b"0", piece) for piece in pieces]


# --------------------------------------------------------------------------- kill definition


def test_a_fault_is_killed_when_its_requirement_fails() -> None:
    row = km.judge_fault(fault(), result({"R-MUST": "FAIL"}, {"R-MUST": [T2, T1]}), LEVELS)
    assert row.killed and row.outcome == "FAIL" and row.collateral == ()
    assert row.killing_tests == (T1, T2)
    assert row.problems == () and row.run_ok


@pytest.mark.parametrize(
    ("outcomes", "shown"),
    [
        pytest.param({"R-MUST-2": "FAIL"}, "PASS", id="another-requirement-fails"),
        pytest.param({"R-MUST": "SKIP"}, "SKIP", id="skipped"),
        pytest.param({"R-MUST": "NOT RUN"}, "NOT RUN", id="not-run"),
    ],
)
def test_a_fault_is_not_killed_by_anything_else(outcomes: dict[str, str], shown: str) -> None:
    row = km.judge_fault(fault(), result(outcomes), LEVELS)
    assert not row.killed and row.outcome == shown
    assert any(f"not killed -- R-MUST was {shown}" in p for p in row.problems)


def test_a_should_fault_is_judged_in_its_strict_run_and_a_warn_does_not_kill() -> None:
    subject = fault("s", "R-SHOULD", "SHOULD")
    assert km.judge_fault(subject, result({"R-SHOULD": "FAIL"}), LEVELS).killed
    assert not km.judge_fault(subject, result({"R-SHOULD": "WARN"}), LEVELS).killed
    matrix = km.evaluate([subject], {"s --strict": result({"R-SHOULD": "FAIL"}), "s": result()}, LEVELS, complete=False)
    assert matrix.faults[0].killed and matrix.faults[0].strict


def test_a_missing_run_crash_or_error_is_a_problem_even_when_killed() -> None:
    assert not km.judge_fault(fault(), None, LEVELS).run_ok
    crashed = km.judge_fault(fault(), result(problem="timed out after 300 s"), LEVELS)
    assert not crashed.killed and any("timed out" in p for p in crashed.problems)
    errored = km.judge_fault(fault(), result({"R-MUST": "FAIL"}, errors=[f"{T2} (call): KeyError: 'x'"]), LEVELS)
    assert errored.killed and not errored.run_ok
    assert any("ERROR" in p and "KeyError" in p for p in errored.problems)
    usage = km.judge_fault(fault(), result({"R-MUST": "FAIL"}, exit_code=4), LEVELS)
    assert any("exited with 4" in p for p in usage.problems)


def test_a_fault_must_declare_a_profile_requirement_at_its_level() -> None:
    assert any("catalogue says MUST" in p for p in km.judge_fault(fault(level="SHOULD"), result(), LEVELS).problems)
    assert any("not a MUST or SHOULD" in p for p in km.judge_fault(fault(requirement="R-NONE"), result(), LEVELS).problems)
    coze = replace(fault(requirement="R-NONE"), profile="coze")
    assert any("requirement of the coze profile" in p for p in km.judge_fault(coze, result(), LEVELS).problems)


# --------------------------------------------------------------------------- collateral


def test_collateral_is_every_other_failing_requirement_sorted() -> None:
    row = km.judge_fault(fault(), result({"R-MUST": "FAIL", "R-SHOULD-2": "FAIL", "R-MUST-2": "FAIL", "R-SHOULD": "WARN"}), LEVELS)
    assert row.killed and row.collateral == ("R-MUST-2", "R-SHOULD-2") and row.problems == ()


def _many(n: int) -> dict[str, str]:
    return {"R-MUST": "FAIL"} | {f"X-{i:03d}": "FAIL" for i in range(n)}


def test_more_than_five_collateral_failures_need_a_written_reason() -> None:
    assert km.judge_fault(fault(), result(_many(km.COLLATERAL_LIMIT)), LEVELS).problems == ()
    unexplained = km.judge_fault(fault(), result(_many(km.COLLATERAL_LIMIT + 1)), LEVELS)
    assert unexplained.killed and any("no written reason" in p for p in unexplained.problems)
    explained = km.judge_fault(fault(collateral="a stream that never ends fails every stream check"), result(_many(9)), LEVELS)
    assert explained.problems == () and len(explained.collateral) == 9


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("subject", [CLEAN, PREFERRED], ids=["clean", "preferred"])
def test_clean_and_preferred_pass_only_without_any_fail_or_warn(subject: km.Subject) -> None:
    assert km.judge_precision(subject, result(), result(), LEVELS).passed
    warned = km.judge_precision(subject, result({"R-SHOULD": "WARN"}), result({"R-SHOULD": "FAIL"}), LEVELS)
    assert not warned.passed and warned.default_warn == ("R-SHOULD",) and warned.strict_fail == ("R-SHOULD",)
    assert not km.judge_precision(subject, result({"R-MUST": "FAIL"}), result(), LEVELS).passed
    assert not km.judge_precision(subject, result(), result({"R-SHOULD": "FAIL"}), LEVELS).passed


def test_an_alternate_fails_exactly_its_declared_should_ids_under_strict() -> None:
    row = km.judge_precision(ALTERNATE, result({"R-SHOULD": "WARN"}), result({"R-SHOULD": "FAIL"}), LEVELS)
    assert row.passed and row.problems == ()


@pytest.mark.parametrize(
    ("default", "strict", "problem"),
    [
        pytest.param({"R-SHOULD": "WARN"}, {}, "declared R-SHOULD does not fail under --strict (it was PASS)", id="declared-holds"),
        pytest.param({"R-SHOULD": "WARN"}, {"R-SHOULD": "FAIL", "R-SHOULD-2": "FAIL"}, "FAIL R-SHOULD-2 under --strict (not declared)", id="undeclared-should"),
        pytest.param({"R-SHOULD": "WARN", "R-MUST": "FAIL"}, {"R-SHOULD": "FAIL"}, "FAIL R-MUST by default", id="must-fails"),
        pytest.param({"R-SHOULD": "WARN", "R-SHOULD-2": "WARN"}, {"R-SHOULD": "FAIL"}, "WARN R-SHOULD-2 by default (not declared)", id="undeclared-warn"),
    ],
)
def test_an_alternate_fails_on_anything_else(default: dict[str, str], strict: dict[str, str], problem: str) -> None:
    row = km.judge_precision(ALTERNATE, result(default), result(strict), LEVELS)
    assert not row.passed and f"alt: {problem}" in row.problems


def test_an_alternate_may_declare_only_should_requirements() -> None:
    subject = replace(ALTERNATE, declares=frozenset({"R-MUST"}))
    row = km.judge_precision(subject, result(), result({"R-MUST": "FAIL"}), LEVELS)
    assert not row.passed and any("not SHOULD requirements" in p for p in row.problems)


def test_a_precision_server_without_its_runs_does_not_pass() -> None:
    row = km.judge_precision(CLEAN, None, result(problem="the run crashed (exit 1)"), LEVELS)
    assert not row.passed and not row.run_ok
    assert row.problems == ("`clean`: no result", "`clean --strict`: the run crashed (exit 1)")


# --------------------------------------------------------------------------- the whole matrix


def _complete_results() -> dict[str, km.RunResult]:
    return {
        "m": result({"R-MUST": "FAIL"}, {"R-MUST": [T1]}),
        "m2": result({"R-MUST-2": "FAIL"}, {"R-MUST-2": [T2]}),
        "s --strict": result({"R-SHOULD": "FAIL"}, {"R-SHOULD": [T3]}),
        "clean": result(),
        "clean --strict": result(),
    }


def _complete_subjects() -> list[km.Subject]:
    return [CLEAN, fault("m"), fault("m2", "R-MUST-2"), fault("s", "R-SHOULD", "SHOULD")]


def test_a_matrix_holds_with_every_fault_killed_every_test_failed_and_every_requirement_faulted() -> None:
    declares = ["R-MUST", "R-MUST-2", "R-SHOULD", "R-SHOULD-2"]
    matrix = km.evaluate(_complete_subjects(), _complete_results(), LEVELS, all_faults_declare=declares)
    assert matrix.holds, matrix.problems
    assert (matrix.killed, len(matrix.faults), matrix.passing, len(matrix.precision)) == (3, 3, 1, 1)
    assert matrix.unkilled_tests == () and matrix.unfaulted == ()


def test_tests_no_fault_fails_and_requirements_without_a_fault_are_listed() -> None:
    results = _complete_results()
    results["s --strict"] = result({"R-SHOULD": "FAIL"}, {"R-SHOULD": [T1]})  # T3 now fails nowhere
    results["clean"] = result(tests=(T1, T2, T3, "conformance/suite/test_c.py::test_four"))
    matrix = km.evaluate(_complete_subjects(), results, LEVELS)
    assert matrix.unkilled_tests == (T3, "conformance/suite/test_c.py::test_four")
    assert matrix.unfaulted == ("R-SHOULD-2",)
    assert f"no fault fails the test {T3}" in matrix.problems
    assert "no fault declares R-SHOULD-2 (SHOULD)" in matrix.problems
    # A failure in a clean or variant run does not make a test "failed by a fault".
    results["clean"] = result({"R-MUST": "FAIL"}, {"R-MUST": [T3]})
    assert T3 in km.evaluate(_complete_subjects(), results, LEVELS).unkilled_tests


C1, C2 = "conformance/suite/test_c.py::test_coze_one", "conformance/suite/test_c.py::test_coze_two"
COZE_LEVELS = {"C-MUST": "MUST", "C-SHOULD": "SHOULD"}


def _coze(subject: km.Subject, name: str | None = None) -> km.Subject:
    return replace(subject, name=name or subject.name, profile="coze")


def _two_profiles() -> tuple[list[km.Subject], dict[str, km.RunResult]]:
    """A complete doc matrix and a complete coze matrix, the coze runs collecting other tests."""
    coze = [_coze(CLEAN, "clean_c"), _coze(fault("cm", "C-MUST")), _coze(fault("cs", "C-SHOULD", "SHOULD"))]
    c_ok = {rid: "PASS" for rid in COZE_LEVELS}
    results = _complete_results() | {
        "clean_c": km.RunResult(outcomes=c_ok, tests=frozenset({C1, C2})),
        "clean_c --strict": km.RunResult(outcomes=c_ok, tests=frozenset({C1, C2})),
        "cm": km.RunResult(outcomes=c_ok | {"C-MUST": "FAIL"}, failing_tests={"C-MUST": frozenset({C1})}, tests=frozenset({C1, C2})),
        "cs --strict": km.RunResult(outcomes=c_ok | {"C-SHOULD": "FAIL"}, failing_tests={"C-SHOULD": frozenset({C2})}, tests=frozenset({C1, C2})),
    }
    return _complete_subjects() + coze, results


def test_each_profile_is_judged_against_its_own_catalogue_faults_and_tests() -> None:
    subjects, results = _two_profiles()
    everything = {s.name: s for s in subjects}
    levels = {"doc": LEVELS | {"R-SHOULD-2": "SHOULD"}, "coze": COZE_LEVELS}
    matrices = km.evaluate_profiles(subjects, results, everything, levels=levels)
    assert list(matrices) == ["doc", "coze"]
    doc, coze = matrices["doc"], matrices["coze"]
    assert (doc.profile, doc.killed, len(doc.faults), len(doc.precision)) == ("doc", 3, 3, 1)
    assert (coze.profile, coze.killed, len(coze.faults), len(coze.precision)) == ("coze", 2, 2, 1)
    assert doc.tests == (T1, T2, T3) and coze.tests == (C1, C2)  # each profile's runs alone
    assert coze.holds and coze.requirements == (("C-MUST", "MUST"), ("C-SHOULD", "SHOULD"))
    assert doc.unfaulted == ("R-SHOULD-2",)  # a coze fault covers no doc requirement
    assert {f.profile for f in coze.faults} == {"coze"} and coze.precision[0].profile == "coze"
    # A coze test no coze fault fails is the coze profile's problem alone.
    results["cs --strict"] = replace(results["cs --strict"], failing_tests={"C-SHOULD": frozenset({C1})})
    matrices = km.evaluate_profiles(subjects, results, everything, levels=levels)
    assert matrices["coze"].unkilled_tests == (C2,) and C2 not in matrices["doc"].tests
    # A coze fault declaring a doc requirement is not a requirement of its profile.
    wrong = _coze(fault("cw", "R-MUST"))
    row = km.evaluate_profiles([wrong], {"cw": result({"R-MUST": "FAIL"})}, {"cw": wrong}, levels=levels, complete=False)["coze"]
    assert "cw: declares R-MUST, which is not a MUST or SHOULD requirement of the coze profile" in row.problems
    with pytest.raises(ValueError, match="not subjects of the doc profile: cm"):
        km.evaluate([CLEAN, _coze(fault("cm", "C-MUST"))], results, LEVELS)


def test_a_partial_run_judges_its_subjects_alone() -> None:
    matrix = km.evaluate([fault("m")], {"m": result({"R-MUST": "FAIL"})}, LEVELS, complete=False)
    assert matrix.holds and matrix.unkilled_tests == () and matrix.unfaulted == ()


# --------------------------------------------------------------------------- publishing


def test_the_published_files_are_deterministic_and_carry_no_times() -> None:
    subjects = _complete_subjects()
    items = list(_complete_results().items())
    docs = []
    for seed in range(3):
        random.Random(seed).shuffle(items)
        shuffled = list(subjects)
        random.Random(seed).shuffle(shuffled)
        shuffled.remove(CLEAN)
        matrix = km.evaluate([CLEAN, *shuffled], dict(items), LEVELS)
        doc = km.matrix_document({"doc": matrix})
        docs.append((km.document_text(doc), km.render_markdown(doc)))
    assert docs[0] == docs[1] == docs[2]
    text = docs[0][0] + docs[0][1]
    assert not re.search(r"\d+\.\d+ ?s\b|\d{4}-\d\d-\d\dT|127\.0\.0\.1|duration|elapsed", text)


def test_the_markdown_shows_the_figures_the_matrix_and_the_lists() -> None:
    results = _complete_results()
    results["m2"] = result(_many(7) | {"R-MUST": "PASS", "R-MUST-2": "FAIL"}, {"R-MUST-2": [T2]})
    subjects = [CLEAN, fault("m"), fault("m2", "R-MUST-2", collateral="why | so many"), fault("s", "R-SHOULD", "SHOULD")]
    doc = km.matrix_document({"doc": km.evaluate(subjects, results, LEVELS)})
    md = km.render_markdown(doc)
    assert "## Profile `doc`\n" in md and "## Profile `coze`" not in md
    assert "- **Recall**: 3 of 3 faults killed (100.0 %)." in md
    assert "- **Precision**: 1 of 1 servers that must pass do (100.0 %)" in md
    assert "| `doc` | 3 of 3 (100.0 %) | 1 of 1 (100.0 %) | 1 of 4 | 0 of 3 | ❌ |" in md  # the summary table
    assert "| R-SHOULD-2 | SHOULD | **none** |" in md
    assert "| R-MUST | MUST | ✅ `m` |" in md
    assert "- `m2`: why \\| so many" in md  # the reason of a fault with more than five collateral
    assert "### Requirements without a fault\n\n- R-SHOULD-2\n" in md
    assert "### Conformance tests no fault fails\n\nNone.\n" in md
    assert "### Generated variants" not in md  # none generated, no factors
    section = doc["profiles"][0]
    assert section["summary"]["holds"] is False and section["faults"][1]["collateral"][0] == "X-000"
    assert {f["profile"] for f in section["faults"]} == {"doc"} and section["precision"][0]["profile"] == "doc"


def test_the_published_files_have_a_section_per_profile_and_a_profile_run_keeps_the_others() -> None:
    subjects, results = _two_profiles()
    everything = {s.name: s for s in subjects}
    matrices = km.evaluate_profiles(subjects, results, everything, levels={"doc": LEVELS, "coze": COZE_LEVELS})
    doc = km.matrix_document(matrices)
    assert doc["format_version"] == km.FORMAT_VERSION == 3
    assert [s["profile"] for s in doc["profiles"]] == ["doc", "coze"]
    coze = doc["profiles"][1]
    assert coze["summary"]["faults"] == 2 and [f["name"] for f in coze["faults"]] == ["cm", "cs"]
    assert [(f["profile"], f["strict"]) for f in coze["faults"]] == [("coze", False), ("coze", True)]
    md = km.render_markdown(doc)
    assert md.index("## Profile `doc`") < md.index("## Profile `coze`")
    assert "| `coze` | 2 of 2 (100.0 %) | 1 of 1 (100.0 %) | 0 of 2 | 0 of 2 | ✅ |" in md
    # A --profile coze run: its fresh section, the committed doc section as it was.
    fresh = km.matrix_document({"coze": matrices["coze"]})
    committed = json.loads(km.document_text(km.matrix_document({"doc": matrices["doc"]})))
    assert km.merge_sections(fresh, committed) == doc
    assert km.merge_sections(fresh, {"format_version": 1, "profile": "doc"})["profiles"] == fresh["profiles"]


# --------------------------------------------------------------------------- one run's document


def test_a_run_document_keeps_the_outcomes_failing_tests_and_errors_of_results_json(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(
        json.dumps(
            {
                "requirements": [
                    {"id": "R-MUST", "outcome": "FAIL", "tests": [{"nodeid": T1, "outcome": "FAIL"}, {"nodeid": T2, "outcome": "PASS"}]},
                    {"id": "R-SHOULD", "outcome": "WARN", "tests": [{"nodeid": T2, "outcome": "WARN"}]},
                ],
                "errors": [{"nodeid": T3, "when": "setup", "message": "KeyError: 'x'"}],
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "junit.xml").write_text(JUNIT, encoding="utf-8")
    doc = jobs.run_document([T1, T2, T3], tmp_path, 1)
    run = km.RunResult.from_document(json.loads(json.dumps(doc)))
    assert run.outcomes == {"R-MUST": "FAIL", "R-SHOULD": "WARN"}
    assert run.failing_tests == {"R-MUST": frozenset({T1})} and run.failed_tests() == {T1}
    assert run.errors == (f"{T3} (setup): KeyError: 'x'",) and run.tests == {T1, T2, T3}
    assert run.exit_code == 1 and run.problem is None


#: A run's junit.xml: test_one failed naming R-MUST, test_two passed, test_three errored
#: in setup naming nothing of the catalogue, a parametrized test skipped.
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
<testcase classname="conformance.suite.test_a" name="test_one"><failure message="FAIL R-MUST (MUST): broken">FAIL R-MUST (MUST)
then the test stopped (call): blocked by R-MUST-2x: no id</failure></testcase>
<testcase classname="conformance.suite.test_a" name="test_two" />
<testcase classname="conformance.suite.test_b" name="test_three"><error message="failed on setup with KeyError">KeyError</error></testcase>
<testcase classname="conformance.suite.test_b.TestC" name="test_four[a::b/c-1]"><skipped message="blocked by R-MUST" /></testcase>
</testsuite></testsuites>
"""


def test_a_run_document_reads_the_junit_failures_and_the_verdict_status(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(
        json.dumps(
            {
                "verdict": {"status": "NOT CONFORMANT"},
                "requirements": [
                    {"id": rid, "outcome": "FAIL" if rid == "R-MUST" else "PASS", "tests": [{"nodeid": T1, "outcome": "PASS"}]}
                    for rid in LEVELS
                ],
                "errors": [],
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "junit.xml").write_text(JUNIT, encoding="utf-8")
    run = km.RunResult.from_document(json.loads(json.dumps(jobs.run_document([T1, T2, T3], tmp_path, 1))))
    assert run.status == "NOT CONFORMANT" and run.problem is None
    # Whole ids only: "R-MUST-2x" names neither R-MUST nor R-MUST-2.
    assert run.junit_failing == {"conformance.suite.test_a::test_one": {"R-MUST"}, "conformance.suite.test_b::test_three": set()}
    (tmp_path / "junit.xml").unlink()
    assert jobs.run_document([T1], tmp_path, 1)["problem"] == "the suite wrote no junit.xml (exit 1)"


def test_a_node_id_is_named_as_junit_names_its_test_case() -> None:
    assert km.junit_case(T1) == "conformance.suite.test_a::test_one"
    assert km.junit_case("conformance/suite/test_b.py::TestC::test_four[a::b/c-1]") == "conformance.suite.test_b.TestC::test_four[a::b/c-1]"


CASE1 = km.junit_case(T1)


def truth(row: km.FaultRow | km.PrecisionRow) -> list[str]:
    return [p for p in row.problems if "JUnit" in p or "verdict" in p or "exited 0" in p]


def test_a_killed_fault_whose_run_tells_one_truth_has_no_problem() -> None:
    run = result({"R-MUST": "FAIL"}, exit_code=1, status="NOT CONFORMANT", junit_failing={CASE1: ["R-MUST"]})
    row = km.judge_fault(fault(), run, LEVELS)
    assert row.killed and row.problems == ()


def test_a_fail_in_a_test_that_ended_skipped_is_a_problem_of_the_fault() -> None:
    # The record says FAIL, but JUnit has the test skipped and the verdict says INCOMPLETE.
    run = result({"R-MUST": "FAIL"}, exit_code=1, status="INCOMPLETE", junit_failing={})
    row = km.judge_fault(fault(), run, LEVELS)
    assert row.killed and row.run_ok  # the published row is the same; the matrix does not hold
    assert truth(row) == [
        "`f`: exit 1 but no failing JUnit test case",
        "`f`: exit 1 but the verdict is INCOMPLETE, not NOT CONFORMANT",
        "`f`: R-MUST FAIL but the verdict is INCOMPLETE",
        "`f`: R-MUST FAILs but no failing JUnit test case names it",
        f"`f`: {T1} recorded a FAIL but is not a failing JUnit test case",
    ]
    assert not km.evaluate([fault()], {"f": run}, LEVELS, complete=False).holds


def test_a_failing_junit_case_that_does_not_name_the_requirement_is_a_problem() -> None:
    run = result({"R-MUST": "FAIL"}, exit_code=1, status="NOT CONFORMANT", junit_failing={CASE1: []})
    assert truth(km.judge_fault(fault(), run, LEVELS)) == ["`f`: R-MUST FAILs but no failing JUnit test case names it"]


def test_a_fail_with_exit_0_is_a_problem() -> None:
    run = result({"R-MUST": "FAIL"}, exit_code=0, status="NOT CONFORMANT", junit_failing={CASE1: ["R-MUST"]})
    assert truth(km.judge_fault(fault(), run, LEVELS)) == [
        f"`f`: exit 0 but 1 failing JUnit test case(s): {CASE1}",
        "`f`: R-MUST FAIL but the suite exited 0",
    ]


@pytest.mark.parametrize(
    ("default", "problems"),
    [
        pytest.param(result(status="CONFORMANT", junit_failing={}), [], id="exit-0-no-failing-case"),
        pytest.param(
            result(status="CONFORMANT", junit_failing={CASE1: []}),
            [f"`clean`: exit 0 but 1 failing JUnit test case(s): {CASE1}"],
            id="exit-0-with-a-failing-case",
        ),
        pytest.param(
            result(exit_code=1, status="NOT CONFORMANT", junit_failing={}),
            ["`clean`: exit 1 but no failing JUnit test case"],
            id="exit-1-without-a-failing-case",
        ),
        pytest.param(
            result(exit_code=1, status="CONFORMANT", junit_failing={CASE1: []}),
            ["`clean`: exit 1 but the verdict is CONFORMANT, not NOT CONFORMANT"],
            id="exit-1-conformant",
        ),
    ],
)
def test_precision_runs_exit_0_exactly_when_no_junit_case_fails(default: km.RunResult, problems: list[str]) -> None:
    strict = result(status="CONFORMANT", junit_failing={})
    row = km.judge_precision(CLEAN, default, strict, LEVELS)
    assert truth(row) == problems and row.passed == (not problems)


def test_an_alternates_strict_failures_are_failing_junit_cases_naming_them() -> None:
    strict = result({"R-SHOULD": "FAIL"}, exit_code=1, status="NOT CONFORMANT", junit_failing={CASE1: ["R-SHOULD"]})
    row = km.judge_precision(ALTERNATE, result(status="CONFORMANT", junit_failing={}), strict, LEVELS)
    assert row.passed and row.problems == ()


def test_a_run_without_results_json_is_a_problem(tmp_path: Path) -> None:
    run = km.RunResult.from_document(jobs.run_document([T1], tmp_path, 3))
    assert run.problem == "the suite wrote no results.json (exit 3)" and run.outcomes == {}
    assert not km.judge_precision(CLEAN, run, result(), LEVELS).passed


# --------------------------------------------------------------------------- the variants


def _reading_rows() -> set[str]:
    text = (km.ROOT / "conformance" / "spec" / "READING.md").read_text(encoding="utf-8")
    table = text.split("## Known ambiguities", 1)[1]
    return {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")} - {"Point"}


@pytest.mark.parametrize("variant", list(all_variants().values()), ids=list(all_variants()))
def test_each_variant_is_a_valid_server_config_naming_its_reading(variant: Variant) -> None:
    ServerConfig(**{**km.BASE_KNOBS, **variant.knobs})  # raises on an unknown knob or a bad value
    assert variant.reading in _reading_rows() | {"Levels"}, variant.reading
    catalogue = load_catalogue()
    assert all(catalogue[rid].level == "SHOULD" for rid in variant.declares)
    assert variant.description.strip()


def test_every_reading_row_has_a_variant_or_a_reason_why_not() -> None:
    """One variant per READING row that takes the other reading."""
    covered = {v.reading for v in all_variants().values()} - {"Levels"}
    assert covered.isdisjoint(SINGLE_READINGS), "a row with a variant is also listed as having one reading"
    assert set(SINGLE_READINGS) <= _reading_rows(), set(SINGLE_READINGS) - _reading_rows()
    assert _reading_rows() - covered - set(SINGLE_READINGS) == set()
    assert all(reason.strip() for reason in SINGLE_READINGS.values())


def test_every_point_the_independent_server_reads_otherwise_is_a_should_requirement() -> None:
    catalogue = load_catalogue()
    assert {catalogue[rid].level for rid in km.INDEPENDENT_DECLARES} == {"SHOULD"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"kind": "alternate"}, "declares the SHOULD ids", id="alternate-without-declares"),
        pytest.param({"declares": frozenset({"ENV-002"})}, "declares no failing", id="preferred-with-declares"),
        pytest.param({"knobs": {}}, "no knobs", id="no-knobs"),
        pytest.param({"knobs": {"faults": frozenset({"x"})}}, "no faults", id="faults"),
        pytest.param({"kind": "other"}, "kind must be", id="kind"),
    ],
)
def test_a_malformed_variant_is_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"name": "v", "kind": "preferred", "knobs": {"bom": True}, "description": "d", "reading": "SSE line format"}
    with pytest.raises(ValueError, match=message):
        Variant(**(fields | kwargs))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the committed matrix


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    if not km.DOC_JSON.is_file():
        pytest.fail(f"{km.DOC_JSON} is missing: run python -m tools.killmatrix --write")
    doc: dict[str, Any] = json.loads(km.DOC_JSON.read_text(encoding="utf-8"))
    return doc


def test_the_committed_markdown_is_rendered_from_the_committed_json(committed: dict[str, Any]) -> None:
    assert km.DOC_MD.read_text(encoding="utf-8") == km.render_markdown(committed)


def _section(committed: dict[str, Any], profile: str) -> dict[str, Any]:
    sections = {s["profile"]: s for s in committed["profiles"]}
    if profile not in sections:
        pytest.fail(
            f"{km.DOC_JSON.relative_to(km.ROOT)} has no section of the {profile} profile:"
            f" run python -m tools.killmatrix --write (or --write --profile {profile})"
        )
    return sections[profile]


def test_the_committed_matrix_has_a_section_per_profile_in_order(committed: dict[str, Any]) -> None:
    assert committed["format_version"] == km.FORMAT_VERSION
    profiles = [s["profile"] for s in committed["profiles"]]
    assert profiles == sorted(set(profiles), key=km.PROFILES.index)


@pytest.mark.parametrize("profile", km.PROFILES)
def test_the_committed_matrix_lists_the_registered_faults_variants_and_requirements(committed: dict[str, Any], profile: str) -> None:
    """The cheap half of CI's ``--check``: a fault or variant added, renamed or moved
    without regenerating the matrix shows here (the other half needs every run)."""
    section = _section(committed, profile)
    faults = {f["name"]: (f["profile"], f["requirement"], f["level"], f["collateral_reason"]) for f in section["faults"]}
    assert faults == {f.name: (profile, f.requirement, f.level, f.collateral) for f in dialect_faults(profile).values()}
    subjects = km.subjects()
    precision = [p["name"] for p in section["precision"]]
    assert precision == [s.name for s in subjects.values() if not s.is_fault and s.profile == profile]
    for p in section["precision"]:
        s = subjects[p["name"]]
        assert (p["profile"], p["kind"], p["declares"], p["reading"], p["description"]) == (
            s.profile, s.kind, sorted(s.declares), s.reading, s.description
        )
    levels = km.profile_levels(profile)
    assert [(r["id"], r["level"]) for r in section["requirements"]] == sorted(levels.items())
    declared = {f.requirement for f in dialect_faults(profile).values()}
    assert section["unfaulted_requirements"] == [rid for rid in sorted(levels) if rid not in declared]


# --------------------------------------------------------------------------- the runner, for real


@pytest.mark.slow
def test_a_small_real_matrix_kills_a_fault_and_passes_the_clean_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = km.main(["--only", "clean", "stream_wrong_media_type", "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert "recall 1/1" in out and "precision 1/1" in out, out
    assert status == 0, out
    assert len(list(tmp_path.glob("*/run.json"))) == 3


@pytest.mark.slow
def test_a_small_real_coze_matrix_runs_the_coze_profile_against_the_coze_dialect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = km.main(["--only", "clean_coze", "coze_stream_media_type", "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert "profile coze: recall 1/1" in out and "precision 1/1" in out and "profile doc" not in out, out
    assert status == 0, out
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(tmp_path.glob("*/run.json"))]
    assert len(runs) == 3
    # Judged against the coze catalogue: every requirement a COZE-* one.
    assert all(r["id"].startswith("COZE-") for run in runs for r in run["requirements"])


@pytest.mark.slow
def test_a_run_over_its_bound_is_killed_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = jobs.run_matrix([km.RunSpec("clean", False)], jobs=1, workdir=tmp_path, timeout=0.2)
    assert (results["clean"].problem or "").startswith("timed out after 0.2 s")
    assert "timed out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--only", "no_such_fault"], id="unknown-name"),
        pytest.param(["--only", "clean", "--write"], id="partial-write"),
        pytest.param(["--jobs", "0"], id="no-jobs"),
        pytest.param(["--profile", "nosuch"], id="unknown-profile"),
    ],
)
def test_bad_usage_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        km.main(argv)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


def test_the_readme_shows_the_committed_figures(committed: dict[str, Any]) -> None:
    """The doc profile's figures in the README's words; every other profile's with its
    name: "**Recall (`coze`): 50 of 50 faults killed", "**Precision (`coze`): 5 of 5
    servers pass", "**50 faults** of the coze dialect", "**3 legal wire variants** of the coze dialect"."""
    readme = (km.ROOT / "README.md").read_text(encoding="utf-8")
    for section in committed["profiles"]:
        profile, s = section["profile"], section["summary"]
        variants = sum(
            1 for p in section["precision"] if p["kind"] in ("preferred", "alternate") and p["server"] != "independent"
        )
        if profile == km.PROFILE:
            assert f"**Recall: {s['killed']} of {s['faults']} faults killed" in readme
            assert f"**Precision: {s['precision_passed']} of {s['precision_servers']} servers pass" in readme
            assert f"**{s['faults']} faults**" in readme and f"**{variants} legal wire variants**" in readme
            generated = section["generated"]["variants"]
            assert generated > 0 and f"- {variants - generated} variants are named" in readme and f"- {generated} are generated" in readme
        else:
            assert f"**Recall (`{profile}`): {s['killed']} of {s['faults']} faults killed" in readme
            assert f"**Precision (`{profile}`): {s['precision_passed']} of {s['precision_servers']} servers pass" in readme
            assert f"**{s['faults']} faults** of the {profile} dialect" in readme
            assert f"**{variants} legal wire variants** of the {profile} dialect" in readme


# --------------------------------------------------------------------------- what --check re-runs: fingerprint and sample


def _inputs(root: Path) -> Path:
    """A repository holding one file of every input part, and files no run reads."""
    for name, text in {
        "conformance/suite/test_a.py": "def test_one(): pass\n",
        "conformance/oracle/catalogue.toml": "[x]\n",
        "schemas/chat.response.json": "{}\n",
        "tests/independent/server.py": "# independent\n",
        "tools/killmatrix/plan.py": "# plan\n",
        "pyproject.toml": "[tool.pytest.ini_options]\n",
        "conftest.py": "\n",
        "README.md": "# readme\n",
        "docs/kill-matrix.md": "# matrix\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_a_fingerprint_is_deterministic_and_changes_with_every_input_part_alone(tmp_path: Path) -> None:
    root = _inputs(tmp_path)
    subjects = _complete_subjects()
    first = fingerprint.fingerprint("doc", subjects, root)
    assert first == fingerprint.fingerprint("doc", list(reversed(subjects)), root)
    assert fingerprint.stale_parts(first, first) == []
    assert set(first["inputs"]) == {*fingerprint.INPUTS, fingerprint.PARAMETERS}
    # Not inputs: docs, the README, bytecode and caches a run writes.
    (root / "README.md").write_text("# another readme\n", encoding="utf-8")
    (root / "docs/kill-matrix.md").write_text("# edited\n", encoding="utf-8")
    (root / "conformance/suite/__pycache__").mkdir()
    (root / "conformance/suite/__pycache__/test_a.cpython-311.pyc").write_bytes(b"\0")
    (root / "schemas/.hypothesis").mkdir()
    (root / "schemas/.hypothesis/db").write_bytes(b"\0")
    assert fingerprint.fingerprint("doc", subjects, root) == first
    for path, part in [
        ("schemas/chat.response.json", "schemas"),
        ("conformance/suite/test_new.py", "conformance"),  # a new check, untracked or not
        ("tests/independent/server.py", "independent server"),
        ("tools/killmatrix/plan.py", "kill matrix tool"),
        ("pyproject.toml", "pytest configuration"),
    ]:
        before = fingerprint.fingerprint("doc", subjects, root)
        (root / path).write_text("# changed\n", encoding="utf-8")
        after = fingerprint.fingerprint("doc", subjects, root)
        assert fingerprint.stale_parts(before, after) == [part], path
    # The plan's parameters: a subject's knobs, a fault more, another profile.
    before = fingerprint.fingerprint("doc", subjects, root)
    changed = [replace(CLEAN, knobs={"bom": True}), *subjects[1:]]
    assert fingerprint.stale_parts(before, fingerprint.fingerprint("doc", changed, root)) == [fingerprint.PARAMETERS]
    assert fingerprint.stale_parts(before, fingerprint.fingerprint("doc", [*subjects, fault("m3")], root)) == ["parameters"]
    assert fingerprint.fingerprint("coze", subjects, root)["sha256"] != before["sha256"]
    assert fingerprint.stale_parts(None, before) == sorted(before["inputs"])  # nothing recorded: stale


def _matrix_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: Mapping[str, Any]) -> None:
    monkeypatch.setattr(cli, "DOC_JSON", tmp_path / "kill-matrix.json")
    monkeypatch.setattr(cli, "DOC_MD", tmp_path / "kill-matrix.md")
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    (tmp_path / "kill-matrix.json").write_text(km.document_text(doc), encoding="utf-8")
    (tmp_path / "kill-matrix.md").write_text(km.render_markdown(doc), encoding="utf-8")


def _world(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, km.Subject], dict[str, km.RunResult], dict[str, Any]]:
    """Two profiles' subjects, their runs' results, and the matrix they publish with the
    fingerprints of this repository's inputs; the cli sees these subjects and levels."""
    subjects, results = _two_profiles()
    subjects.append(fault("s2", "R-SHOULD-2", "SHOULD"))  # every requirement faulted: the matrix holds
    results["s2 --strict"] = result({"R-SHOULD-2": "FAIL"}, {"R-SHOULD-2": [T3]})
    everything = {s.name: s for s in subjects}
    levels = {"doc": LEVELS, "coze": COZE_LEVELS}
    monkeypatch.setattr(cli, "subjects", lambda: everything)
    monkeypatch.setattr(cli, "profile_levels", lambda profile: levels[profile])
    monkeypatch.setattr(cli, "PROFILES", tuple(levels))  # this world's profiles, not every one
    matrices = km.evaluate_profiles(subjects, results, everything, levels=levels)
    prints = fingerprint.fingerprints(tuple(levels), subjects)
    return everything, results, km.matrix_document(matrices, {}, prints)


def _fake_runs(results: Mapping[str, km.RunResult], ran: list[str]) -> Any:
    def run_matrix(specs: list[km.RunSpec], **_: Any) -> dict[str, km.RunResult]:
        ran.extend(spec.key for spec in specs)
        return {spec.key: results[spec.key] for spec in specs}

    return run_matrix


def test_check_refuses_a_stale_matrix_naming_the_profile_and_the_command_before_running_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, results, doc = _world(monkeypatch)
    doc["profiles"][1]["fingerprint"]["inputs"]["schemas"] = "0" * 64
    doc["profiles"][1]["fingerprint"]["sha256"] = "1" * 64
    _matrix_files(tmp_path, monkeypatch, doc)
    ran: list[str] = []
    monkeypatch.setattr(cli, "run_matrix", _fake_runs(results, ran))
    assert cli.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "profile coze: the committed matrix is stale -- its fingerprint differs in: schemas" in out
    assert "`python -m tools.killmatrix --write --profile coze`" in out and "profile doc" not in out
    assert ran == []
    # A matrix of the previous format has no fingerprint: stale as a whole.
    _matrix_files(tmp_path, monkeypatch, {**doc, "format_version": 2})
    assert cli.main(["--check"]) == 1
    assert "not format 3: regenerate with `python -m tools.killmatrix --write`" in capsys.readouterr().out


def test_check_reruns_every_default_precision_run_and_a_shard_and_fails_when_one_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    everything, results, doc = _world(monkeypatch)
    _matrix_files(tmp_path, monkeypatch, doc)
    ran: list[str] = []
    monkeypatch.setattr(cli, "run_matrix", _fake_runs(results, ran))
    assert cli.main(["--check", "--sample-seed", "0", "--sample-share", "0.5"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "sample (seed 0, share 0.5: shard 1 of 2)" in out and "every sampled run reproduces" in out
    assert {"clean", "clean_c"} <= set(ran) and not {"clean --strict", "clean_c --strict"} <= set(ran)
    # Another seed, the other shard: together every run once.
    first = set(ran)
    ran.clear()
    assert cli.main(["--check", "--sample-seed", "1", "--sample-share", "0.5"]) == 0
    assert first | set(ran) == {spec.key for spec in km.plan(everything.values())}
    assert first & set(ran) == {"clean", "clean_c"}
    # A sampled run that no longer gives its committed outcome: red, saying which and how.
    capsys.readouterr()
    results = dict(results) | {"clean": result({"R-MUST": "WARN"}), "cm": result({"C-MUST": "PASS"})}
    monkeypatch.setattr(cli, "run_matrix", _fake_runs(results, []))
    assert cli.main(["--check", "--sample-seed", "0", "--sample-share", "1"]) == 1
    out = capsys.readouterr().out
    assert "`clean`: default_warn was [], now ['R-MUST']" in out
    assert "`cm`: killed was True, now False" in out and "cm: not killed -- C-MUST was PASS in `cm`" in out
    # A committed page edited by hand is not trusted either.
    (tmp_path / "kill-matrix.md").write_text("# edited\n", encoding="utf-8")
    assert cli.main(["--check", "--sample-seed", "0"]) == 1
    assert "kill-matrix.md: not as --write writes it" in capsys.readouterr().out


def _many_subjects() -> list[km.Subject]:
    """Two profiles of faults, clean servers and an alternate, MUST and SHOULD."""
    must, should = fault("m"), fault("s", "R-SHOULD", "SHOULD")
    doc = [CLEAN, ALTERNATE, *(replace(must, name=f"m{i}") for i in range(23)), *(replace(should, name=f"s{i}") for i in range(5))]
    coze = [_coze(CLEAN, "clean_c"), *(_coze(must, f"c{i}") for i in range(11))]
    return doc + coze


@pytest.mark.parametrize(
    ("share", "shards"), [(1.0, 1), (0.5, 2), (1 / 3, 3), (0.25, 4), (0.1, 10), (0.07, 15)], ids=lambda v: f"{v:g}"
)
def test_the_shards_of_ceil_1_over_share_successive_seeds_hold_every_other_run_once(share: float, shards: int) -> None:
    subjects = _many_subjects()
    specs = km.plan(subjects)
    assert km.shard_count(share) == shards
    start = 233  # any seed: successive commits
    samples = [sample.sample(subjects, seed, share) for seed in range(start, start + shards)]
    faults = {s.name for s in subjects if s.is_fault}
    default_precision = [spec for spec in specs if not spec.strict and spec.subject not in faults]
    for picked in samples:
        assert list(picked.precision) == default_precision  # every one, every time
        assert picked.total == len(specs) and picked.shards == shards
        assert picked.runs == [*picked.precision, *picked.rotating]
    rotating = [spec for picked in samples for spec in picked.rotating]
    assert len(rotating) == len(set(rotating)) == len(specs) - len(default_precision)
    assert set(rotating) | set(default_precision) == set(specs)
    # Nearly equal shards, each profile's runs dealt on their own.
    for profile in ("doc", "coze"):
        names = {s.name for s in subjects if s.profile == profile}
        sizes = [sum(1 for spec in picked.rotating if spec.subject in names) for picked in samples]
        assert max(sizes) - min(sizes) <= 1
    # The seed after the last starts the rotation again.
    assert sample.sample(subjects, start + shards, share).rotating == samples[0].rotating


def test_a_sample_is_deterministic_and_successive_seeds_differ() -> None:
    subjects = _many_subjects()
    assert sample.sample(subjects, 7) == sample.sample(list(subjects), 7)
    assert sample.sample(subjects, 7).rotating != sample.sample(subjects, 8).rotating
    assert sample.sample(subjects, 7).describe() == sample.sample(subjects, 17).describe().replace("seed 17", "seed 7")
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        sample.sample(subjects, 7, 0.0)


def test_the_default_seed_counts_the_commits_up_to_head(tmp_path: Path) -> None:
    seed, origin = sample.default_seed()
    assert seed >= 0 and "commits" in origin or origin.startswith("0")
    assert sample.default_seed(tmp_path) == (0, "0: no git HEAD to count commits from")


def test_the_page_says_what_ci_re_runs() -> None:
    md = km.render_markdown(km.matrix_document({"doc": km.evaluate(_complete_subjects(), _complete_results(), LEVELS)}))
    assert "**What CI checks.**" in md and "fingerprint" in md and "one shard of 10 of the other runs" in md
