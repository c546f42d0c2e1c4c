"""Legal server forms derived, not listed: the generated half of the kill matrix's precision.

Variants written down one by one (``reference/variants.py``) share the blind spots of
the hands that wrote the checks: a conformant server whose cancel answered
``"data": null`` once failed the suite because nobody had listed that form. So the kill
matrix also runs servers whose forms are *derived* from the data the checks read and
from READING, and *combined* two at a time.

Factors (each has the reference server's own form as its first level):

* **READING rows** -- every server knob that a named variant sets on its own, with each
  value the named variants give it and the SHOULD ids that value declares (the named
  variants are the READING rows' list of legal readings; combinations of two are new).
* **Conversation forms** -- every non-empty subset of the profile's
  ``[[conversation.form]]`` as the forms a server honours (READING "Conversation id in a
  chat request": at least one MUST); a subset without the preferred form declares the
  SHOULD requirements of that row.
* **Response fields** -- from the response schemas (``schemas/index.json``: every success
  answer and every event payload): a property the schema does not require is sent absent
  and ``null`` (READING "Fields the API cannot set"); a property with no constraint at all
  (cancel's ``data``, READING "Success `msg`, `data`") is also sent as a string, an array
  and an object; a property whose schema allows several JSON types (ids, READING "Id
  types") is sent in the other one (digits as a JSON integer, an integer as its digits).
  Not derived: a payload's ``event`` key (READING "`event` key in SSE payloads": absent
  is the knob ``payload_event_key``, and ``null`` is not the event's name, so illegal),
  and payloads whose schema requires nothing (an error event: code and msg are one of
  two places, not optional).

Every pair of levels of every two factors appears in at least one generated server (a
covering array of strength 2, built greedily and deterministically). Each generated
server must pass by default, and under ``--strict`` fail exactly the union of the SHOULD
ids its levels declare -- the same bar as a named ``alternate`` variant.

This module reads the suite's data (profile, catalogue, schemas) and the reference's
named variants; the reference server itself only ever sees plain knobs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Factor", "GeneratedVariant", "Level", "covering_rows", "derive_factors", "generate"]

#: Knobs of named variants that are not factors of their own: ``field_forms`` (derived
#: from the schemas instead), ``conversation_keys`` (from the profile), and knobs only a
#: combined variant sets (``chunk_seed``: the split of sse_all_framing's writes).
_NOT_FACTORS = frozenset({"field_forms", "conversation_keys", "chunk_seed"})
#: The reference server's name of each profile conversation form (config.CONVERSATION_KEYS).
_CONVERSATION_KNOB = {"body.ConversationID": "ConversationID", "body.conversation_id": "conversation_id", "query.conversation_id": "query"}
#: A level's knob naming the conversation forms it ignores; merged into ``conversation_keys``.
_CONVERSATIONS_IGNORED = "conversation_keys_ignored"
#: Keys whose schema constraints are not "optional" in the sense above (see the docstring).
_EVENT_KEY = "event"
#: The JSON types an unconstrained property is also sent as (besides absent and null):
#: one scalar, one list, one object -- integer and boolean add nothing a string does not.
_ANY_VALUE_FORMS = ("string", "array", "object")


@dataclass(frozen=True)
class Level:
    """One form of a factor: the knobs it sets and the SHOULD ids it breaks."""

    label: str
    knobs: Mapping[str, Any]
    declares: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Factor:
    """One dimension of the legal forms; ``levels[0]`` is the reference's own form."""

    name: str
    source: str  # where the forms come from: a READING row or a schema path
    levels: tuple[Level, ...]


@dataclass(frozen=True)
class GeneratedVariant:
    name: str
    knobs: Mapping[str, Any]
    declares: frozenset[str]
    description: str

    @property
    def kind(self) -> str:
        return "alternate" if self.declares else "preferred"


# --------------------------------------------------------------------------- factors


def _reading_factors(variants: Iterable[Any], defaults: Mapping[str, Any]) -> list[Factor]:
    """One factor per knob that a named variant sets alone."""
    by_knob: dict[str, dict[str, Level]] = {}
    rows: dict[str, str] = {}
    for v in variants:
        if len(v.knobs) != 1:
            continue  # a combination of single knobs, each a variant of its own
        (knob, value), = v.knobs.items()
        if knob in _NOT_FACTORS:
            continue
        by_knob.setdefault(knob, {})[repr(value)] = Level(f"{knob}={value!r}", {knob: value}, frozenset(v.declares))
        rows.setdefault(knob, v.reading)
    return [
        Factor(
            knob,
            f'READING "{rows[knob]}"',
            (Level(f"{knob}={defaults[knob]!r}", {}), *(levels[k] for k in sorted(levels))),
        )
        for knob, levels in sorted(by_knob.items())
    ]


def _conversation_factors(profile: Any, catalogue: Mapping[str, Any]) -> tuple[list[Factor], list[frozenset[tuple[int, int]]]]:
    """One factor per conversation form of the profile: honoured or not, and the rule
    that at least one is honoured (as a forbidden combination of levels, by the index
    each factor will have within these factors)."""
    preferred = profile.conversation.preferred.name
    row = "Conversation id in a chat request"
    should = frozenset(r.id for r in catalogue.values() if r.reading == row and r.level == "SHOULD")
    factors = [
        Factor(
            f"conversation form {form.name}",
            f'READING "{row}"; profile [[conversation.form]] {form.name}',
            (
                Level(f"{form.name} honoured", {}),
                Level(
                    f"{form.name} ignored",
                    {_CONVERSATIONS_IGNORED: (_CONVERSATION_KNOB[form.name],)},
                    should if form.name == preferred else frozenset(),
                ),
            ),
        )
        for form in profile.conversation.forms
    ]
    none_honoured = frozenset((i, 1) for i in range(len(factors)))
    return factors, [none_honoured]


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        found: Mapping[str, Any] = schema["definitions"][ref.rsplit("/", 1)[1]]
        return found
    return node


def _types(node: Mapping[str, Any]) -> list[str]:
    t = node.get("type")
    return [t] if isinstance(t, str) else list(t) if isinstance(t, list) else []


def _unconstrained(node: Mapping[str, Any]) -> bool:
    return not any(k in node for k in ("type", "$ref", "enum", "const", "anyOf", "oneOf", "allOf", "properties"))


def _field_factors(where: str, schema: Mapping[str, Any]) -> list[Factor]:
    """The forms of every field of one answer's (or payload's) schema."""
    found: list[Factor] = []

    def walk(node: Mapping[str, Any], path: str) -> None:
        node = _resolve(schema, node)
        props = node.get("properties")
        if isinstance(props, Mapping):
            required = set(node.get("required", ()))
            if not required and path == "":
                return  # nothing required: "optional" means "one of", not "may be left out"
            for key in sorted(props):
                child = _resolve(schema, props[key])
                at = f"{path}.{key}" if path else key
                if path == "" and key == _EVENT_KEY:
                    continue
                forms: list[str] = []
                if key not in required:
                    forms += ["absent", "null"]
                    if _unconstrained(child):
                        forms += list(_ANY_VALUE_FORMS)
                types = set(_types(child)) - {"null"}
                if types == {"string", "integer"}:
                    forms += ["number", "text"]  # digits as a JSON integer, an integer as digits
                if forms:
                    readings = [
                        row
                        for row, applies in (
                            ("Success `msg`, `data`", _unconstrained(child)),
                            ("Fields the API cannot set", key not in required and not _unconstrained(child)),
                            ("Id types", "number" in forms),
                        )
                        if applies
                    ]
                    found.append(
                        Factor(
                            f"field {where} {at}",
                            f"READING {' and '.join(repr(r) for r in readings)}; schema {where} {at}",
                            (Level("as sent", {}), *(Level(f"{at} {f}", {"field_forms": ((where, at, f),)}) for f in forms)),
                        )
                    )
                walk(child, at)
        items = node.get("items")
        if isinstance(items, Mapping):
            walk(items, f"{path}[]")

    walk(schema, "")
    return found


def _schema_factors(index: Mapping[str, Any], load_schema: Any) -> list[Factor]:
    factors: list[Factor] = []
    for name in sorted(index):
        meta = index[name]
        if meta["role"] == "response" and meta.get("outcome") == "success":
            for endpoint in meta["endpoints"]:
                factors += _field_factors(endpoint.split(" ", 1)[1], load_schema(name))
        elif meta["role"] == "event":
            for event in meta["events"]:
                factors += _field_factors(f"event:{event}", load_schema(name))
    return factors


def derive_factors() -> tuple[list[Factor], list[frozenset[tuple[int, int]]]]:
    """Every factor, from the profile, the catalogue, the schemas and the named variants,
    and the combinations of levels no server may take ((factor index, level) sets)."""
    from dataclasses import fields

    from conformance.oracle.catalogue import load_catalogue
    from conformance.oracle.profile import load_profile
    from conformance.oracle.schemas import load_index, load_schema
    from conformance.reference.config import ServerConfig
    from conformance.reference.variants import VARIANTS

    defaults = {f.name: f.default for f in fields(ServerConfig)}
    profile = load_profile("doc")
    catalogue = load_catalogue().for_profile("doc")
    reading = _reading_factors(VARIANTS, defaults)
    conversation, rules = _conversation_factors(profile, catalogue)
    shift = len(reading)
    forbidden = [frozenset((shift + i, level) for i, level in rule) for rule in rules]
    return [*reading, *conversation, *_schema_factors(load_index()["schemas"], load_schema)], forbidden


# --------------------------------------------------------------------------- the covering array


def covering_rows(sizes: Sequence[int], forbidden: Sequence[frozenset[tuple[int, int]]] = ()) -> list[tuple[int, ...]]:
    """Rows of level indexes in which every pair of levels of every two factors occurs,
    and no row holds all of any ``forbidden`` set of (factor, level) (each set must be
    larger than a pair, so that every pair stays possible).

    Greedy and deterministic: each row starts from a pair not yet covered (the one with
    the most non-first levels, then the first), and every other factor, the largest
    first, takes the level that covers the most new pairs with the factors already set
    (ties: the lowest index) among the levels that complete no forbidden set. A little
    more than the product of the two largest factors' sizes, whatever the number of
    factors (36 rows for the 62 factors of the doc profile, whose largest have 6 and 5).
    """
    n = len(sizes)
    if any(len(rule) < 3 for rule in forbidden):
        raise ValueError("a forbidden set must name at least three factors: every pair must stay possible")
    if n == 1:
        return [(a,) for a in range(sizes[0])]
    uncovered = {
        ((i, a), (j, b)) for i, j in itertools.combinations(range(n), 2) for a in range(sizes[i]) for b in range(sizes[j])
    }
    rows: list[tuple[int, ...]] = []
    order = sorted(range(n), key=lambda k: (-sizes[k], k))
    while uncovered:
        (i, a), (j, b) = min(uncovered, key=lambda pair: (-(pair[0][1] > 0) - (pair[1][1] > 0), pair))
        row: dict[int, int] = {i: a, j: b}
        for k in order:
            if k in row:
                continue
            allowed = [level for level in range(sizes[k]) if not _completes(row, k, level, forbidden)]
            row[k] = max(allowed, key=lambda level: (_gain(row, k, level, uncovered), -level))
        done = tuple(row[k] for k in range(n))
        uncovered -= {((p, done[p]), (q, done[q])) for p, q in itertools.combinations(range(n), 2)}
        rows.append(done)
    return rows


def _gain(row: Mapping[int, int], k: int, level: int, uncovered: set[tuple[tuple[int, int], tuple[int, int]]]) -> int:
    return sum((((m, v), (k, level)) if m < k else ((k, level), (m, v))) in uncovered for m, v in row.items())


def _completes(row: Mapping[int, int], k: int, level: int, forbidden: Sequence[frozenset[tuple[int, int]]]) -> bool:
    """Whether setting factor ``k`` to ``level`` completes a forbidden set. (The last
    factor of a set to be set always has an allowed level: a set forbids one of its.)"""
    chosen = {**row, k: level}
    return any(all(chosen.get(f) == v for f, v in rule) for rule in forbidden)


def _merge(levels: Iterable[Level]) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    for level in levels:
        for key, value in level.knobs.items():
            knobs[key] = knobs.get(key, ()) + value if key in ("field_forms", _CONVERSATIONS_IGNORED) else value
    ignored = knobs.pop(_CONVERSATIONS_IGNORED, ())
    if ignored:
        knobs["conversation_keys"] = tuple(k for k in _CONVERSATION_KNOB.values() if k not in ignored)
    return knobs


def generate(factors: Sequence[Factor] | None = None) -> list[GeneratedVariant]:
    """The generated servers, named ``pairwise_NN`` in a stable order."""
    forbidden: Sequence[frozenset[tuple[int, int]]] = ()
    if factors is None:
        factors, forbidden = derive_factors()
    rows = covering_rows([len(f.levels) for f in factors], forbidden)
    out = []
    for number, row in enumerate(rows, start=1):
        chosen = [f.levels[i] for f, i in zip(factors, row, strict=True)]
        changed = [level.label for level, i in zip(chosen, row, strict=True) if i != 0]
        out.append(
            GeneratedVariant(
                f"pairwise_{number:02d}",
                _merge(chosen),
                frozenset().union(*(level.declares for level in chosen)),
                "; ".join(changed) or "the reference's own forms",
            )
        )
    return out
