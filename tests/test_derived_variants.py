"""The generated half of the kill matrix's precision: forms derived, combined pairwise."""

from __future__ import annotations

import itertools
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.oracle.catalogue import load_catalogue
from conformance.oracle.schemas import load_index
from conformance.reference import ServerConfig
from tools.killmatrix.derived import (
    Factor,
    Level,
    covering_rows,
    derive_factors,
    generate,
)

FACTORS, FORBIDDEN = derive_factors()
GENERATED = generate()
SHOULD = {r.id for r in load_catalogue().for_profile("doc").values() if r.level == "SHOULD"}


def pairs_of(rows: list[tuple[int, ...]]) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    return {((p, row[p]), (q, row[q])) for row in rows for p, q in itertools.combinations(range(len(row)), 2)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=2, max_size=9))
def test_every_pair_of_levels_is_covered(sizes: list[int]) -> None:
    rows = covering_rows(sizes)
    wanted = {((i, a), (j, b)) for i, j in itertools.combinations(range(len(sizes)), 2) for a in range(sizes[i]) for b in range(sizes[j])}
    assert wanted <= pairs_of(rows)
    assert all(len(row) == len(sizes) and all(0 <= v < n for v, n in zip(row, sizes, strict=True)) for row in rows)


def test_a_forbidden_combination_never_occurs_and_the_pairs_are_still_covered() -> None:
    sizes = [2, 2, 2, 3, 2]
    forbidden = [frozenset({(0, 1), (1, 1), (2, 1)})]
    rows = covering_rows(sizes, forbidden)
    assert not any(all(row[f] == v for f, v in rule) for rule in forbidden for row in rows)
    wanted = {((i, a), (j, b)) for i, j in itertools.combinations(range(5), 2) for a in range(sizes[i]) for b in range(sizes[j])}
    assert wanted <= pairs_of(rows)
    with pytest.raises(ValueError, match="three"):
        covering_rows(sizes, [frozenset({(0, 1), (1, 1)})])


def test_rows_stay_near_the_product_of_the_two_largest_factors() -> None:
    sizes = sorted((len(f.levels) for f in FACTORS), reverse=True)
    assert sizes[0] * sizes[1] <= len(GENERATED) <= 2 * sizes[0] * sizes[1]


def test_cancel_data_may_be_absent_null_or_any_value() -> None:
    # READING "Success msg, data": the form a conformant server once failed on is derived.
    (factor,) = [f for f in FACTORS if f.name == "field /v3/chat/cancel data"]
    forms = {level.knobs["field_forms"][0][2] for level in factor.levels[1:]}
    assert {"absent", "null", "string", "array", "object"} <= forms
    assert not any(level.declares for level in factor.levels)


def test_every_optional_success_field_is_sent_absent_and_null() -> None:
    from conformance.oracle.schemas import load_schema

    named = {f.name for f in FACTORS}
    for name, meta in load_index()["schemas"].items():
        if meta["role"] != "response" or meta.get("outcome") != "success":
            continue
        data = load_schema(name)["properties"].get("data", {})
        optional = set(data.get("properties", {})) - set(data.get("required", ()))
        for endpoint in meta["endpoints"]:
            for key in optional:
                assert f"field {endpoint.split(' ', 1)[1]} data.{key}" in named


def test_ids_of_two_json_types_are_sent_in_the_other() -> None:
    (factor,) = [f for f in FACTORS if f.name == "field event:conversation.message.delta message_item.id"]
    assert [level.knobs["field_forms"][0][2] for level in factor.levels[1:]] == ["number", "text"]


def test_the_event_key_is_no_field_form() -> None:
    # null is not the event's name (MUST); absent is the knob payload_event_key.
    assert not [f for f in FACTORS if f.name.endswith(" event")]


def test_the_conversation_forms_never_all_ignored() -> None:
    conversation = [f for f in GENERATED if "conversation_keys" in f.knobs]
    assert conversation and all(f.knobs["conversation_keys"] for f in conversation)
    ignored_preferred = [f for f in conversation if "ConversationID" not in f.knobs["conversation_keys"]]
    assert ignored_preferred and all("CHAT-CONV-002" in f.declares for f in ignored_preferred)


@pytest.mark.parametrize("variant", GENERATED, ids=lambda v: v.name)
def test_every_generated_variant_is_a_valid_server_and_declares_shoulds_only(variant: object) -> None:
    ServerConfig(**variant.knobs)  # type: ignore[attr-defined]
    assert variant.declares <= SHOULD  # type: ignore[attr-defined]


def test_declares_are_the_union_of_the_levels() -> None:
    knobs = {f.name for f in fields(ServerConfig)}
    factors = [
        Factor("a", "x", (Level("a0", {}), Level("a1", {"success_msg": "ok"}, frozenset({"ENV-002"})))),
        Factor("b", "y", (Level("b0", {}), Level("b1", {"error_data": "absent"}, frozenset({"ERR-002"})))),
    ]
    made = generate(factors)
    assert {v.declares for v in made} == {frozenset(), frozenset({"ENV-002"}), frozenset({"ERR-002"}), frozenset({"ENV-002", "ERR-002"})}
    assert all(set(v.knobs) <= knobs for v in made)
    assert {v.kind for v in made} == {"preferred", "alternate"}
