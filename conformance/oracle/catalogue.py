"""The requirement catalogue: what the suite judges, as data (``catalogue.toml``).

Each requirement quotes the spec sentence it rests on (``spec/agent-api.zh.md``,
verbatim after whitespace normalisation) and names the READING.md row it follows.
Every verdict of the suite is recorded against one of these ids
(:mod:`conformance.oracle.outcomes`); ``pytest --list-requirements`` prints them.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
import textwrap
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from conformance.oracle.profile import available_profiles

__all__ = [
    "CATALOGUE_PATH",
    "LEVELS",
    "SOURCE_ORIGINS",
    "SPEC_PATH",
    "Catalogue",
    "CatalogueError",
    "Requirement",
    "format_catalogue",
    "load_catalogue",
    "normalise_whitespace",
    "read_catalogue",
    "spec_sha256",
    "spec_text",
]

CATALOGUE_PATH = Path(__file__).parent / "catalogue.toml"
SPEC_PATH = Path(__file__).parent.parent / "spec" / "agent-api.zh.md"

LEVELS = ("MUST", "SHOULD", "MAY")
# AREA-NNN or AREA-SUB-NNN (CHAT-001, CHAT-SSE-004, BOT-CREATE-001).
_ID = re.compile(r"[A-Z]+(?:-[A-Z]+)?-[0-9]{3}")
# A rule of the SSE checker (sse.py) or of the stream grammar (grammar.py).
# Or a check of a test module that several profiles share (auth.*: test_auth.RULES).
_RULE = re.compile(r"(?:sse|grammar|envelope|auth)\.[a-z][a-z0-9_]*")
#: The origins a ``source`` may name, and its shape: "<origin> <path>[:<line>[-<line>]]".
SOURCE_ORIGINS = ("cozepy", "coze-cloud-vector", "coze-wire")
#: How a coze-wire claim was established (its labels): read in the source, derived
#: from several files, or reported in an issue. A derived claim is not yet a MUST.
EVIDENCE = ("code", "derived", "issue")
_SOURCE = re.compile(r"(?P<origin>[a-z-]+) (?P<path>[\w./-]+)(?::(?P<first>\d+)(?:-(?P<last>\d+))?)?")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Requirement:
    """One requirement of the catalogue (see the header of catalogue.toml)."""

    id: str
    level: str
    area: str
    endpoint: str
    quote: str
    gloss: str
    profiles: tuple[str, ...]
    retired: bool
    reading: str | None = None
    #: The checker, grammar, envelope or auth rules whose findings this requirement
    #: judges (the TOML ``rule``: one name or a list of names).
    rule: tuple[str, ...] | None = None
    note: str | None = None
    #: Where the quote comes from when it is not the spec page: "<origin> <path>[:<lines>]"
    #: with origin "cozepy" (the SDK package) or "coze-cloud-vector" (its captured streams).
    source: str | None = None
    #: With a "coze-wire" source: the claim's label there (EVIDENCE).
    evidence: str | None = None

    @property
    def rules(self) -> tuple[str, ...]:
        return self.rule or ()

    @property
    def origin(self) -> str:
        """What the quote quotes: the spec page, or a ``source`` origin."""
        return "spec" if self.source is None else self.source.split(" ", 1)[0]


_REQUIRED = tuple(f.name for f in fields(Requirement) if f.default is not None)
_OPTIONAL = tuple(f.name for f in fields(Requirement) if f.default is None)


class Catalogue(Mapping[str, Requirement]):
    """Requirements by id, in the file's order (the spec's order)."""

    def __init__(self, requirements: Iterable[Requirement], *, sha256: str, source: Path) -> None:
        self._by_id = {r.id: r for r in requirements}
        self.sha256 = sha256
        self.source = source

    def __getitem__(self, req_id: str) -> Requirement:
        return self._by_id[req_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"<Catalogue {len(self)} requirements from {self.source.name} sha256={self.sha256[:12]}>"

    def _subset(self, keep: Iterable[Requirement]) -> Catalogue:
        return Catalogue(keep, sha256=self.sha256, source=self.source)

    def select(self, patterns: Iterable[str]) -> Catalogue:
        """The requirements whose id matches any of the fnmatch globs (case-sensitive).
        A pattern that matches nothing is an error: it is a typo, not a wish for none."""
        patterns = list(patterns)
        unmatched = [p for p in patterns if not fnmatch.filter(self._by_id, p)]
        if unmatched:
            raise CatalogueError(f"no requirement id matches {', '.join(map(repr, unmatched))}")
        return self._subset(r for r in self.values() if any(fnmatch.fnmatchcase(r.id, p) for p in patterns))

    def active(self) -> Catalogue:
        """The requirements that are not retired."""
        return self._subset(r for r in self.values() if not r.retired)

    def for_profile(self, name: str) -> Catalogue:
        """The active requirements that belong to the profile ``name``."""
        return self._subset(r for r in self.values() if not r.retired and name in r.profiles)

    def at_level(self, level: str) -> Catalogue:
        """The active requirements of one level."""
        if level not in LEVELS:
            raise CatalogueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        return self._subset(r for r in self.values() if not r.retired and r.level == level)

    def must(self) -> Catalogue:
        return self.at_level("MUST")

    def should(self) -> Catalogue:
        return self.at_level("SHOULD")

    def by_rule(self, rule: str) -> Requirement | None:
        """The requirement a checker or grammar rule is attributed to, if any. Each
        profile maps a rule to one id at most: ask the profile's subset (``for_profile``)."""
        found = [r for r in self.values() if rule in r.rules and not r.retired]
        if len(found) > 1:
            raise CatalogueError(f"rule {rule} maps to {[r.id for r in found]}: select one profile first")
        return found[0] if found else None


def normalise_whitespace(text: str) -> str:
    """Runs of whitespace collapse to one space (how quotes are compared with the spec)."""
    return " ".join(text.split())


def _entry_name(index: int, entry: Mapping[str, Any]) -> str:
    rid = entry.get("id")
    return f"requirement #{index + 1}" + (f" ({rid})" if isinstance(rid, str) else "")


def _requirement(index: int, entry: Any, profiles: frozenset[str]) -> Requirement:
    if not isinstance(entry, dict):
        raise CatalogueError(f"requirement #{index + 1}: expected a table, got {entry!r}")
    where = _entry_name(index, entry)
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise CatalogueError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CatalogueError(f"{where}: unknown keys {', '.join(unknown)}")
    for key in (*_REQUIRED, *_OPTIONAL):
        if key in ("profiles", "retired", "rule") or key not in entry:
            continue
        value = entry[key]
        if not isinstance(value, str) or not value.strip():
            raise CatalogueError(f"{where}: {key} must be a non-empty string, got {value!r}")
    rid, level, area = entry["id"], entry["level"], entry["area"]
    if not _ID.fullmatch(rid):
        raise CatalogueError(f"{where}: id must look like AREA-NNN or AREA-SUB-NNN (e.g. CHAT-SSE-004)")
    if rid.rsplit("-", 1)[0] != area:
        raise CatalogueError(f"{where}: area {area!r} must be the id without its number ({rid.rsplit('-', 1)[0]!r})")
    if level not in LEVELS:
        raise CatalogueError(f"{where}: unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    if not isinstance(entry["retired"], bool):
        raise CatalogueError(f"{where}: retired must be true or false, got {entry['retired']!r}")
    names = entry["profiles"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise CatalogueError(f"{where}: profiles must be a non-empty list of profile names, got {names!r}")
    strangers = [n for n in names if n not in profiles]
    if strangers:
        raise CatalogueError(
            f"{where}: unknown profile {', '.join(map(repr, strangers))}; available: {', '.join(sorted(profiles))}"
        )
    rule = entry.get("rule")
    rules = [rule] if isinstance(rule, str) else rule
    if rule is not None and not (
        isinstance(rules, list) and rules and all(isinstance(r, str) and _RULE.fullmatch(r) for r in rules)
    ):
        raise CatalogueError(
            f"{where}: rule {rule!r} must name an sse.*, grammar.*, envelope.* or auth.* rule, or be a list of them"
        )
    source = entry.get("source")
    if source is not None:
        match = _SOURCE.fullmatch(source)
        if match is None or match["origin"] not in SOURCE_ORIGINS:
            raise CatalogueError(
                f"{where}: source {source!r} must be '<origin> <path>[:<lines>]' with origin in {', '.join(SOURCE_ORIGINS)}"
            )
    extra = {"rule": tuple(rules)} if rules is not None else {}
    evidence = entry.get("evidence")
    if (source is not None and source.startswith("coze-wire ")) != (evidence is not None):
        raise CatalogueError(f"{where}: a coze-wire source needs evidence (one of {', '.join(EVIDENCE)}), and only it")
    if evidence is not None and evidence not in EVIDENCE:
        raise CatalogueError(f"{where}: evidence {evidence!r} must be one of {', '.join(EVIDENCE)}")
    if evidence == "derived" and level == "MUST":
        raise CatalogueError(f"{where}: a claim labelled [derived] is SHOULD until verified on a live server")
    return Requirement(**{**entry, "profiles": tuple(names), **extra})


def read_catalogue(path: Path, *, profiles: Iterable[str] | None = None) -> Catalogue:
    """Load and validate the catalogue at ``path`` (uncached). ``profiles`` are the
    known profile names, by default the files in conformance/oracle/profiles/."""
    known = frozenset(available_profiles() if profiles is None else profiles)
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: not valid UTF-8 TOML: {exc}") from None
    entries = data.get("requirement")
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{path}: no [[requirement]] entries")
    extra = sorted(set(data) - {"requirement"})
    if extra:
        raise CatalogueError(f"{path}: unknown top-level keys {', '.join(extra)}")
    requirements: list[Requirement] = []
    seen: dict[str, int] = {}
    rules: dict[tuple[str, str], str] = {}
    for index, entry in enumerate(entries):
        try:
            req = _requirement(index, entry, known)
        except CatalogueError as exc:
            raise CatalogueError(f"{path}: {exc}") from None
        if req.id in seen:
            raise CatalogueError(f"{path}: requirement #{index + 1} ({req.id}): duplicate id {req.id} (first at #{seen[req.id] + 1})")
        seen[req.id] = index
        for rule in () if req.retired else req.rules:
            # One requirement per rule in each profile: a finding must be attributable to
            # exactly one id of the run's profile.
            for profile in req.profiles:
                other = rules.get((profile, rule))
                if other is not None:
                    raise CatalogueError(
                        f"{path}: {req.id}: rule {rule} is already judged by {other} in profile {profile!r}"
                    )
                rules[(profile, rule)] = req.id
        requirements.append(req)
    return Catalogue(requirements, sha256=hashlib.sha256(raw).hexdigest(), source=path)


@functools.cache
def load_catalogue() -> Catalogue:
    """The package's catalogue, validated once per process."""
    return read_catalogue(CATALOGUE_PATH)


@functools.cache
def spec_text() -> str:
    """The vendored spec page every quote comes from."""
    return SPEC_PATH.read_text(encoding="utf-8")


def spec_sha256() -> str:
    return hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()


def format_catalogue(cat: Catalogue, verbose: bool = False, *, width: int = 110) -> str:
    """A terminal table: id, level, endpoint, gloss (wrapped). ``verbose`` adds the
    quote, the READING row, the rule and the note under each row."""
    reqs = list(cat.values())
    if not reqs:
        return "no requirements"
    id_w = max(len(r.id) for r in reqs)
    level_w = max(len("level"), *(len(r.level) for r in reqs))
    ep_w = max(len("endpoint"), *(len(r.endpoint) for r in reqs))
    indent = id_w + level_w + ep_w + 6
    gloss_w = max(30, width - indent)
    lines = [f"{'id':<{id_w}}  {'level':<{level_w}}  {'endpoint':<{ep_w}}  gloss", "-" * min(width, indent + gloss_w)]
    for r in reqs:
        gloss = textwrap.wrap(r.gloss + (" [retired]" if r.retired else ""), gloss_w, break_on_hyphens=False) or [""]
        lines.append(f"{r.id:<{id_w}}  {r.level:<{level_w}}  {r.endpoint:<{ep_w}}  {gloss[0]}")
        lines.extend(" " * indent + more for more in gloss[1:])
        if verbose:
            details = [("spec", normalise_whitespace(r.quote))]
            details += [(k, v) for k, v in (("reading", r.reading), ("rule", ", ".join(r.rules)), ("note", r.note)) if v]
            for label, text in details:
                wrapped = textwrap.wrap(
                    text, max(30, width - id_w - 2), initial_indent=f"{label}: ", subsequent_indent="    ",
                    break_on_hyphens=False,
                )
                lines.extend(f"{'':<{id_w}}  {w}" for w in wrapped)
    counts = ", ".join(f"{sum(r.level == lv and not r.retired for r in reqs)} {lv}" for lv in LEVELS)
    retired = sum(r.retired for r in reqs)
    lines.append("")
    lines.append(
        f"{len(reqs)} requirements ({counts}"
        + (f", {retired} retired" if retired else "")
        + f"); catalogue sha256 {cat.sha256[:16]}, spec sha256 {spec_sha256()[:16]}"
    )
    return "\n".join(lines)
