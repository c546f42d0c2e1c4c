"""Load the JSON Schemas of the request, response and SSE event bodies, and validate
instances against them.

The schemas live in the top-level ``schemas/`` folder (one file per body, named
``<endpoint>.<kind>.json``; ``schemas/index.json`` gives each one's role). Each embeds
the page's example and is read with ``conformance/spec/READING.md``; see the
``description`` of each file for the spec section it follows.

Big integers: instances are validated as the caller parsed them (``json.loads`` keeps
integers exact), schemas hold integer bounds only, and nothing here passes a value
through a float — ids exceed 2**53 (READING "Id types").
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

__all__ = [
    "SchemaViolation",
    "event_schema_for",
    "validate_profile_object",
    "load_index",
    "load_schema",
    "schema_dir",
    "schema_names",
    "validate",
]

INDEX_FILE = "index.json"

# Where the files are, first match wins: an installed wheel ships them as package data
# next to this module; a source tree or an editable install has them at the repo root.
_CANDIDATE_DIRS = (
    Path(__file__).resolve().parent.parent / "schema_files",  # installed wheel (pyproject package-dir)
    Path(__file__).resolve().parent.parent.parent / "schemas",  # source tree, editable install
)

# A violation prints its value; a whole response body would drown the message.
_VALUE_REPR_LIMIT = 120


@dataclass(frozen=True)
class SchemaViolation:
    """One way an instance breaks a schema: where, which keyword, what value."""

    instance_path: str
    keyword: str
    value: str
    message: str
    schema_path: str

    def __str__(self) -> str:
        text = f"at {self.instance_path}: {self.keyword!r} failed — {self.message}"
        if self.value not in self.message:
            text += f" (value: {self.value})"
        return text


@functools.cache
def schema_dir() -> Path:
    """The folder holding the schema files (see ``_CANDIDATE_DIRS``)."""
    for candidate in _CANDIDATE_DIRS:
        if (candidate / INDEX_FILE).is_file():
            return candidate
    searched = ", ".join(str(c) for c in _CANDIDATE_DIRS)
    raise FileNotFoundError(f"no schema folder with {INDEX_FILE} found; searched {searched}")


def schema_names() -> list[str]:
    """Every schema name (a file's name without ``.json``), sorted."""
    return sorted(p.name.removesuffix(".json") for p in schema_dir().glob("*.json") if p.name != INDEX_FILE)


@functools.cache
def _read(name: str) -> dict[str, Any]:
    if name not in schema_names():
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(schema_names())}")
    path = schema_dir() / f"{name}.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` as a fresh dict (callers may mutate it)."""
    return copy.deepcopy(_read(name))


@functools.cache
def load_index() -> dict[str, Any]:
    """``schemas/index.json``: ``{"schemas": {name: {role, endpoints, events, ...}}, "events_without_schema": {...}}``."""
    loaded: dict[str, Any] = json.loads((schema_dir() / INDEX_FILE).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(name: str) -> Draft7Validator:
    # No format checker: the schemas use no formats, and READING asks for nothing a
    # format would add (an icon_url is "a string", not "a reachable URI").
    return Draft7Validator(_read(name))


def _pointer(parts: Iterable[str | int]) -> str:
    """An RFC 6901 JSON pointer, except that the root is shown as ``/`` rather than ``""``."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped)


def _short_repr(value: object) -> str:
    text = repr(value)
    if len(text) > _VALUE_REPR_LIMIT:
        text = text[: _VALUE_REPR_LIMIT - 1] + "…"
    return text


def _violation(error: ValidationError) -> SchemaViolation:
    return SchemaViolation(
        instance_path=_pointer(error.absolute_path),
        keyword=str(error.validator),
        value=_short_repr(error.instance),
        message=error.message,
        schema_path=_pointer(error.absolute_schema_path),
    )


def validate(name: str, instance: object) -> list[SchemaViolation]:
    """Every violation of schema ``name`` by ``instance`` (empty when it conforms), sorted
    by instance path (array indexes numerically), then keyword, so reports are stable."""
    errors = sorted(_validator(name).iter_errors(instance), key=_error_order)
    return [_violation(e) for e in errors]


def _error_order(error: ValidationError) -> tuple[list[tuple[str, str | int]], str]:
    # Keys and indexes never share a level of one parent, so comparing (type name, part)
    # only ever compares str with str or int with int.
    return [(type(p).__name__, p) for p in error.absolute_path], str(error.validator)


@functools.cache
def _profile_validator(path: str) -> Draft7Validator:
    file = schema_dir() / f"{path}.json"
    if not file.is_file():
        raise ValueError(f"unknown schema {path!r}: no {file}")
    return Draft7Validator(json.loads(file.read_text(encoding="utf-8")))


def validate_profile_object(path: str, instance: object) -> list[SchemaViolation]:
    """Every violation of a profile's own schema (``"coze/chat"``: schemas/coze/chat.json)
    by ``instance``; such schemas live in a folder of their profile, outside the index."""
    errors = sorted(_profile_validator(path).iter_errors(instance), key=_error_order)
    return [_violation(e) for e in errors]


def event_schema_for(event_name: str) -> str | None:
    """The name of the schema for the payload of SSE event ``event_name``, or None for an
    event with no documented payload (``done``) or an unknown event (READING: unknown
    event types are never a failure)."""
    for name, entry in load_index()["schemas"].items():
        if event_name in entry.get("events", []):
            return str(name)
    return None
