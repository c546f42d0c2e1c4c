"""Wire profiles: every wire rule the checks use, as data (``profiles/<name>.toml``).

The ``doc`` profile is the Agent API as ``spec/agent-api.zh.md`` documents it, read
with ``spec/READING.md``. A later profile is another data file, never another copy of
a test module: code reads a profile's values and never compares its name.

The ``[stream]`` table is handed over as a plain mapping (``Profile.stream``); the
stream grammar builds its own ``StreamRules`` from it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "PROFILES_DIR",
    "Auth",
    "AuthClass",
    "Bots",
    "ChatAnswers",
    "CodeSets",
    "Conversation",
    "ConversationForm",
    "Endpoint",
    "EnvelopeRules",
    "ErrorCode",
    "FrozenMap",
    "Ids",
    "Messages",
    "Profile",
    "Precondition",
    "ProfileError",
    "RateGroup",
    "RateLimits",
    "Timestamps",
    "available_profiles",
    "fill",
    "load_profile",
    "read_profile",
]

PROFILES_DIR = Path(__file__).parent / "profiles"

_ID_TYPES = frozenset({"string", "integer", "digits"})
_JSON_TYPES = frozenset({"string", "integer"})
_PARAMS_IN = frozenset({"body", "query", "path"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_AUTH_MODES = frozenset({"bearer", "cookie"})
_PATH_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ProfileError(ValueError):
    """A profile is unknown or malformed; the message names the file, table and key."""


_V = TypeVar("_V")


class FrozenMap(Mapping[str, _V]):
    """A read-only mapping that, unlike ``types.MappingProxyType``, pickles and
    deep-copies (a profile may travel to an xdist worker or into a report)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, _V]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))


# --------------------------------------------------------------------------- typed reading of TOML tables


class _Table:
    """One TOML table, read key by key with errors that name where (why own code: a
    schema library would give messages about JSON paths, not about ``[table].key``)."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: expected a table, got {data!r}")
        self.data: dict[str, Any] = data
        self.where = where
        self.read: set[str] = set()

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise ProfileError(f"{self.where}: missing key {key!r}")
        self.read.add(key)
        return self.data[key]

    def _bad(self, key: str, expected: str, value: Any) -> ProfileError:
        return ProfileError(f"{self.where}.{key}: expected {expected}, got {value!r}")

    def has(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, *, choices: frozenset[str] | None = None, empty: bool = False) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not (value or empty):
            raise self._bad(key, "a string" if empty else "a non-empty string", value)
        if choices is not None and value not in choices:
            raise self._bad(key, f"one of {sorted(choices)}", value)
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer", value)
        return value

    def number(self, key: str) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._bad(key, "a non-negative number", value)
        return float(value)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def texts(self, key: str, *, choices: frozenset[str] | None = None, empty: bool = False) -> tuple[str, ...]:
        value = self._get(key)
        if not (isinstance(value, list) and (value or empty) and all(isinstance(v, str) and v for v in value)):
            raise self._bad(key, "a list of non-empty strings" + ("" if empty else " (at least one)"), value)
        if choices is not None and not set(value) <= choices:
            raise self._bad(key, f"values from {sorted(choices)}", value)
        if len(set(value)) != len(value):
            raise self._bad(key, "no repeated values", value)
        return tuple(value)

    def integers(self, key: str) -> tuple[int, ...]:
        value = self._get(key)
        if not (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise self._bad(key, "a non-empty list of integers", value)
        return tuple(value)

    def template(self, key: str) -> Mapping[str, Any]:
        """An inline table of JSON values: a request body with ``{placeholders}``."""
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an inline table (a request body template)", value)
        return FrozenMap(value)

    def table(self, key: str) -> _Table:
        return _Table(self._get(key), f"{self.where}.{key}" if self.where.startswith("[") else f"[{key}]")

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key)
        name = f"{self.where[1:-1]}.{key}" if self.where.startswith("[") else key
        if not (isinstance(value, list) and value):
            raise ProfileError(f"[[{name}]]: expected at least one entry, got {value!r}")
        return [_Table(v, f"[[{name}]] #{i + 1}") for i, v in enumerate(value)]

    def done(self) -> None:
        """Reject keys nobody read: a typo must not silently keep a default."""
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise ProfileError(f"{self.where}: unknown keys {unknown}")


# --------------------------------------------------------------------------- the profile's parts


@dataclass(frozen=True)
class ErrorCode:
    code: int
    description: str


@dataclass(frozen=True)
class EnvelopeRules:
    """spec, 错误处理: the envelope of every answer and the listed error codes."""

    code_key: str
    msg_key: str
    data_key: str
    success_code: int
    success_description: str
    preferred_success_msg: str
    error_data_null_preferred: bool
    parameter_error_code: int
    error_codes: tuple[ErrorCode, ...]
    #: True: an error's code MUST be one of ``error_codes``; False: any non-zero integer
    #: (the listed ones are those the profile's tests expect by name).
    error_codes_closed: bool = True
    #: Where an answer carries its log id, when the profile says it does: a header, and
    #: a dotted path in the JSON body.
    logid_header: str | None = None
    logid_key: str | None = None

    @property
    def codes(self) -> frozenset[int]:
        """The listed error codes."""
        return frozenset(e.code for e in self.error_codes)

    def description(self, code: int) -> str:
        if code == self.success_code:
            return self.success_description
        for e in self.error_codes:
            if e.code == code:
                return e.description
        raise KeyError(f"code {code} is not listed; listed: {sorted(self.codes)}")


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    auth: str
    rate_group: str
    params_in: str
    required: tuple[str, ...]
    success_data: bool
    id_types: Mapping[str, str]
    #: Where a success's object lives when the endpoint does not answer the envelope's
    #: ``data``: a top-level key (``"ChatV3ChatDetail"``), or ``""`` for the bare object
    #: (no envelope at all). None: the envelope. An enveloped answer stays legal.
    success_key: str | None = None

    @property
    def key(self) -> str:
        """``"POST /v3/chat"``: how the catalogue names an endpoint."""
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    def url_path(self, **params: str | int) -> str:
        """The path with its ``:name`` segments filled in (ids as digits)."""
        missing = [p for p in self.path_params if p not in params]
        extra = sorted(set(params) - set(self.path_params))
        if missing or extra:
            raise ValueError(f"{self.key}: expected path parameters {list(self.path_params)}, got {sorted(params)}")
        return _PATH_PARAM.sub(lambda m: str(params[m.group(1)]), self.path)


@dataclass(frozen=True)
class AuthClass:
    name: str
    mode: str  # "bearer" or "cookie"
    path_prefixes: tuple[str, ...]
    header: str | None = None
    scheme: str | None = None
    cookie: str | None = None

    def covers(self, path: str) -> bool:
        return path.startswith(self.path_prefixes)


@dataclass(frozen=True)
class Auth:
    """spec, 认证方式: the classes, which paths belong to which, and the 401 code."""

    unauthorized_code: int
    classes: tuple[AuthClass, ...]

    def __getitem__(self, name: str) -> AuthClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(f"no auth class {name!r}; have {[c.name for c in self.classes]}")

    def class_for(self, path: str) -> AuthClass:
        for c in self.classes:
            if c.covers(path):
                return c
        raise KeyError(f"no auth class covers {path!r}")


@dataclass(frozen=True)
class RateGroup:
    name: str
    limit: int
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class RateLimits:
    """spec, 速率限制."""

    window_seconds: float
    refusal_code: int
    retry_after_max_seconds: float
    groups: tuple[RateGroup, ...]

    def __getitem__(self, name: str) -> RateGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no rate-limit group {name!r}; have {[g.name for g in self.groups]}")

    def group_of(self, endpoint: str) -> RateGroup:
        for g in self.groups:
            if endpoint in g.endpoints:
                return g
        raise KeyError(f"endpoint {endpoint!r} is in no rate-limit group")


@dataclass(frozen=True)
class Ids:
    """READING "Id types"."""

    bot_id_json_types: tuple[str, ...]
    bot_id_string_pattern: str
    opaque_json_types: tuple[str, ...]
    compare_as_text: bool

    def is_bot_id(self, value: Any) -> bool:
        """A ``bot_id`` of a response: a JSON integer or a decimal string, as configured."""
        if _json_type(value) not in self.bot_id_json_types:
            return False
        return not isinstance(value, str) or re.fullmatch(self.bot_id_string_pattern, value) is not None

    def is_opaque_id(self, value: Any) -> bool:
        """A conversation, message or chat id: non-empty, of an allowed JSON type."""
        return _json_type(value) in self.opaque_json_types and value != ""

    @staticmethod
    def text(value: int | str) -> str:
        """The exact text an id is compared by (never through a float)."""
        return value if isinstance(value, str) else str(value)


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    return None


@dataclass(frozen=True)
class Timestamps:
    """READING "Timestamps"."""

    unit: str
    min: int
    max_ahead_seconds: int

    def plausible(self, value: Any, now: float | None = None) -> bool:
        """An integer of seconds since the epoch, ``min <= value <= now + max_ahead``."""
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        now = time.time() if now is None else now
        return self.min <= value <= now + self.max_ahead_seconds


@dataclass(frozen=True)
class ConversationForm:
    location: str  # "body" or "query"
    key: str

    @property
    def name(self) -> str:
        return f"{self.location}.{self.key}"


@dataclass(frozen=True)
class Conversation:
    """READING "Conversation id in a chat request": the forms, in the order tried."""

    response_key: str
    forms: tuple[ConversationForm, ...]
    preferred: ConversationForm


@dataclass(frozen=True)
class CodeSets:
    """Acceptable error codes for a kind of negative answer."""

    codes: frozenset[int]
    conversation_codes: frozenset[int]


@dataclass(frozen=True)
class Messages:
    required: tuple[str, ...]
    content_type_keys: tuple[str, ...]
    roles: tuple[str, ...]
    accepted_content_types: tuple[str, ...]
    preferred_content_types: tuple[str, ...]


@dataclass(frozen=True)
class ChatAnswers:
    answer_role: str
    answer_type: str
    answer_within_seconds: float
    #: What a cancel of a chat that already finished may answer besides success.
    finished_cancel_codes: tuple[int, ...] = ()
    #: The code of a chat with a bot never published to the chat's connector, where the
    #: profile names one.
    unpublished_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Bots:
    """How the suite makes its bots (request body templates whose ``"{name}"`` string
    values are filled in; a value ``"{model}"`` is left out when no model is given)
    and, where the profile documents them, the statuses and first version."""

    name_max: int
    create_body: Mapping[str, Any]
    publish_body: Mapping[str, Any]
    draft_status: str | None = None
    online_status: str | None = None
    first_version: int | None = None
    #: Query parameters that make the bot-detail endpoint answer the draft, where the
    #: profile has them.
    draft_query: Mapping[str, Any] | None = None
    #: Query parameters the online-info endpoint needs besides the bot id, where the
    #: profile has them (studio: the API connector).
    online_query: Mapping[str, Any] | None = None
    #: A request that configures a created draft before it is published (the
    #: ``update_info`` endpoint's body), where the profile's create cannot set the prompt.
    configure_body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Precondition:
    """A setup answer that means the deployment is not ready to be certified: the
    ``code`` from ``endpoint`` ends the run with ``text``."""

    endpoint: str
    code: int
    text: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    #: The embedded reference server's dialect for this profile (``--dialect``).
    reference_dialect: str
    envelope: EnvelopeRules
    endpoints: tuple[Endpoint, ...]
    auth: Auth
    ratelimits: RateLimits
    ids: Ids
    timestamps: Timestamps
    conversation: Conversation
    unknown_ids: CodeSets
    forbidden: CodeSets
    messages: Messages
    chat: ChatAnswers
    bots: Bots
    stream: Mapping[str, Any]
    source: Path
    preconditions: tuple[Precondition, ...] = ()

    def endpoint(self, name: str) -> Endpoint:
        """An endpoint by its name (``"chat"``) or key (``"POST /v3/chat"``)."""
        for e in self.endpoints:
            if name in (e.name, e.key):
                return e
        raise KeyError(f"{self.name}: no endpoint {name!r}; have {[e.name for e in self.endpoints]}")


# --------------------------------------------------------------------------- parsing


def _envelope(t: _Table) -> EnvelopeRules:
    errors = []
    for e in t.tables("error_code"):
        errors.append(ErrorCode(e.integer("code"), e.text("description")))
        e.done()
    codes = [e.code for e in errors]
    if len(set(codes)) != len(codes):
        raise ProfileError(f"[[envelope.error_code]]: repeated codes {codes}")
    env = EnvelopeRules(
        code_key=t.text("code_key"),
        msg_key=t.text("msg_key"),
        data_key=t.text("data_key"),
        success_code=t.integer("success_code"),
        success_description=t.text("success_description"),
        preferred_success_msg=t.text("preferred_success_msg", empty=True),
        error_data_null_preferred=t.flag("error_data_null_preferred"),
        parameter_error_code=t.integer("parameter_error_code"),
        error_codes=tuple(errors),
        error_codes_closed=t.flag("error_codes_closed"),
        logid_header=t.text("logid_header") if t.has("logid_header") else None,
        logid_key=t.text("logid_key") if t.has("logid_key") else None,
    )
    if env.success_code in env.codes:
        raise ProfileError(f"[envelope]: success_code {env.success_code} is also an error code")
    if env.parameter_error_code not in env.codes:
        raise ProfileError(f"[envelope]: parameter_error_code {env.parameter_error_code} is not a listed error code")
    t.done()
    return env


def _endpoint(t: _Table) -> Endpoint:
    raw_ids = t.table("id_types")
    id_types = {k: raw_ids.text(k, choices=_ID_TYPES) for k in list(raw_ids.data)}
    raw_ids.done()
    e = Endpoint(
        name=t.text("name"),
        method=t.text("method", choices=_METHODS),
        path=t.text("path"),
        auth=t.text("auth"),
        rate_group=t.text("rate_group"),
        params_in=t.text("params_in", choices=_PARAMS_IN),
        required=t.texts("required", empty=True),
        success_data=t.flag("success_data"),
        id_types=FrozenMap(id_types),
        success_key=t.text("success_key", empty=True) if t.has("success_key") else None,
    )
    t.done()
    if not e.path.startswith("/"):
        raise ProfileError(f"{t.where}: path {e.path!r} must start with '/'")
    if e.params_in == "path" and not set(e.required) <= set(e.path_params):
        raise ProfileError(f"{t.where}: required path parameters {list(e.required)} are not all in {e.path!r}")
    for key, kind in id_types.items():
        # Digits travel in queries and paths; JSON bodies carry strings or integers.
        if (kind == "digits") != (e.params_in != "body"):
            raise ProfileError(f"{t.where}.id_types.{key}: {kind!r} does not fit parameters in the {e.params_in}")
    return e


def _auth(t: _Table) -> Auth:
    classes = []
    for c in t.tables("class"):
        mode = c.text("mode", choices=_AUTH_MODES)
        if mode == "bearer":
            cls = AuthClass(c.text("name"), mode, c.texts("path_prefixes"), header=c.text("header"), scheme=c.text("scheme"))
        else:
            cls = AuthClass(c.text("name"), mode, c.texts("path_prefixes"), cookie=c.text("cookie"))
        c.done()
        classes.append(cls)
    auth = Auth(unauthorized_code=t.integer("unauthorized_code"), classes=tuple(classes))
    t.done()
    return auth


def _ratelimits(t: _Table) -> RateLimits:
    groups = []
    for g in t.tables("group"):
        group = RateGroup(g.text("name"), g.integer("limit"), g.texts("endpoints"))
        g.done()
        if group.limit <= 0:
            raise ProfileError(f"{g.where}.limit: expected a positive integer, got {group.limit}")
        groups.append(group)
    rl = RateLimits(
        window_seconds=t.number("window_seconds"),
        refusal_code=t.integer("refusal_code"),
        retry_after_max_seconds=t.number("retry_after_max_seconds"),
        groups=tuple(groups),
    )
    t.done()
    return rl


def _ids(t: _Table) -> Ids:
    ids = Ids(
        bot_id_json_types=t.texts("bot_id_json_types", choices=_JSON_TYPES),
        bot_id_string_pattern=t.text("bot_id_string_pattern"),
        opaque_json_types=t.texts("opaque_json_types", choices=_JSON_TYPES),
        compare_as_text=t.flag("compare_as_text"),
    )
    try:
        re.compile(ids.bot_id_string_pattern)
    except re.error as exc:
        raise ProfileError(f"[ids].bot_id_string_pattern: not a regular expression: {exc}") from None
    t.done()
    return ids


def _timestamps(t: _Table) -> Timestamps:
    ts = Timestamps(t.text("unit", choices=frozenset({"seconds"})), t.integer("min"), t.integer("max_ahead_seconds"))
    t.done()
    return ts


def _conversation(t: _Table) -> Conversation:
    forms = []
    for f in t.tables("form"):
        forms.append(ConversationForm(f.text("location", choices=frozenset({"body", "query"})), f.text("key")))
        f.done()
    preferred = t.text("preferred_form")
    by_name = {f.name: f for f in forms}
    if preferred not in by_name:
        raise ProfileError(f"[conversation].preferred_form: {preferred!r} is not one of {list(by_name)}")
    conv = Conversation(t.text("response_key"), tuple(forms), by_name[preferred])
    t.done()
    return conv


def _code_sets(t: _Table) -> CodeSets:
    sets = CodeSets(frozenset(t.integers("codes")), frozenset(t.integers("conversation_codes")))
    t.done()
    return sets


def _messages(t: _Table) -> Messages:
    m = Messages(
        required=t.texts("required"),
        content_type_keys=t.texts("content_type_keys"),
        roles=t.texts("roles"),
        accepted_content_types=t.texts("accepted_content_types"),
        preferred_content_types=t.texts("preferred_content_types", empty=True),
    )
    t.done()
    return m


def _chat(t: _Table) -> ChatAnswers:
    c = ChatAnswers(
        t.text("answer_role"),
        t.text("answer_type"),
        t.number("answer_within_seconds"),
        t.integers("finished_cancel_codes"),
        t.integers("unpublished_codes") if t.has("unpublished_codes") else (),
    )
    t.done()
    return c


def _bots(t: _Table) -> Bots:
    b = Bots(
        name_max=t.integer("name_max"),
        create_body=t.template("create_body"),
        publish_body=t.template("publish_body"),
        draft_status=t.text("draft_status") if t.has("draft_status") else None,
        online_status=t.text("online_status") if t.has("online_status") else None,
        first_version=t.integer("first_version") if t.has("first_version") else None,
        draft_query=t.template("draft_query") if t.has("draft_query") else None,
        configure_body=t.template("configure_body") if t.has("configure_body") else None,
        online_query=t.template("online_query") if t.has("online_query") else None,
    )
    t.done()
    return b


def _preconditions(root: _Table) -> tuple[Precondition, ...]:
    if not root.has("precondition"):
        return ()
    found = []
    for t in root.tables("precondition"):
        found.append(Precondition(t.text("endpoint"), t.integer("code"), t.text("text")))
        t.done()
    return tuple(found)


def _cross_check(p: Profile) -> None:
    """What one table says about another must agree."""
    names = [e.name for e in p.endpoints]
    if len(set(names)) != len(names):
        raise ProfileError(f"[[endpoint]]: repeated names {names}")
    keys = [e.key for e in p.endpoints]
    if len(set(keys)) != len(keys):
        raise ProfileError(f"[[endpoint]]: repeated method and path {keys}")
    class_names = [c.name for c in p.auth.classes]
    group_names = [g.name for g in p.ratelimits.groups]
    for label, seq in (("[[auth.class]]", class_names), ("[[ratelimits.group]]", group_names)):
        if len(set(seq)) != len(seq):
            raise ProfileError(f"{label}: repeated names {seq}")
    members = [n for g in p.ratelimits.groups for n in g.endpoints]
    if len(set(members)) != len(members):
        raise ProfileError(f"[[ratelimits.group]]: an endpoint is in two groups: {members}")
    for n in members:
        if n not in names:
            raise ProfileError(f"[[ratelimits.group]]: unknown endpoint {n!r}; endpoints: {names}")
    for e in p.endpoints:
        if e.auth not in class_names:
            raise ProfileError(f"[[endpoint]] {e.name}: unknown auth class {e.auth!r}; classes: {class_names}")
        try:
            by_prefix = p.auth.class_for(e.path).name
        except KeyError:
            raise ProfileError(f"[[endpoint]] {e.name}: no [[auth.class]] path prefix covers {e.path!r}") from None
        if by_prefix != e.auth:
            raise ProfileError(f"[[endpoint]] {e.name}: auth {e.auth!r}, but its path prefix belongs to {by_prefix!r}")
        if e.rate_group not in group_names:
            raise ProfileError(f"[[endpoint]] {e.name}: unknown rate_group {e.rate_group!r}; groups: {group_names}")
        if e.name not in p.ratelimits[e.rate_group].endpoints:
            raise ProfileError(
                f"[[endpoint]] {e.name}: rate_group {e.rate_group!r}, but [[ratelimits.group]] {e.rate_group} "
                f"does not list it"
            )
    for pre in p.preconditions:
        if pre.endpoint not in names:
            raise ProfileError(f"[[precondition]]: unknown endpoint {pre.endpoint!r}; endpoints: {names}")
    for label, codes in (
        ("[[precondition]]", {pre.code for pre in p.preconditions}),
        ("[unknown_ids]", p.unknown_ids.codes | p.unknown_ids.conversation_codes),
        ("[forbidden]", p.forbidden.codes | p.forbidden.conversation_codes),
        ("[auth].unauthorized_code", {p.auth.unauthorized_code}),
        ("[ratelimits].refusal_code", {p.ratelimits.refusal_code}),
        ("[chat].finished_cancel_codes", set(p.chat.finished_cancel_codes)),
        ("[chat].unpublished_codes", set(p.chat.unpublished_codes)),
    ):
        unlisted = sorted(codes - p.envelope.codes)
        if unlisted:
            raise ProfileError(f"{label}: codes {unlisted} are not in [[envelope.error_code]]")


def read_profile(path: Path) -> Profile:
    """Load and validate the profile file at ``path`` (uncached)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc}") from None
    root = _Table(data, "")
    try:
        head = root.table("profile")
        name, description = head.text("name"), head.text("description")
        dialect = head.text("reference_dialect")
        head.done()
        if name != path.stem:
            raise ProfileError(f"[profile].name: {name!r} must equal the file name {path.stem!r}")
        stream = root._get("stream")
        if not isinstance(stream, dict):
            raise ProfileError(f"[stream]: expected a table, got {stream!r}")
        profile = Profile(
            name=name,
            description=description,
            reference_dialect=dialect,
            envelope=_envelope(root.table("envelope")),
            endpoints=tuple(_endpoint(t) for t in root.tables("endpoint")),
            auth=_auth(root.table("auth")),
            ratelimits=_ratelimits(root.table("ratelimits")),
            ids=_ids(root.table("ids")),
            timestamps=_timestamps(root.table("timestamps")),
            conversation=_conversation(root.table("conversation")),
            unknown_ids=_code_sets(root.table("unknown_ids")),
            forbidden=_code_sets(root.table("forbidden")),
            messages=_messages(root.table("messages")),
            chat=_chat(root.table("chat")),
            bots=_bots(root.table("bots")),
            stream=FrozenMap(stream),
            source=path,
            preconditions=_preconditions(root),
        )
        root.done()
        _cross_check(profile)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    return profile


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """A body template with its ``"{name}"`` strings replaced by ``values``; a key
    whose value is None is left out (``"{model}"`` without --model)."""
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        return values[template[1:-1]]
    if isinstance(template, Mapping):
        filled = {k: fill(v, values) for k, v in template.items()}
        return {k: v for k, v in filled.items() if v is not None}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


def available_profiles() -> tuple[str, ...]:
    """The profile names: the ``*.toml`` files beside this module, sorted."""
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.toml") if _NAME.fullmatch(p.stem)))


@functools.cache
def load_profile(
    name: str, *, rate_window: float | None = None, rate_limits: tuple[tuple[str, int], ...] = ()
) -> Profile:
    """The profile ``profiles/<name>.toml``; an unknown name lists the available ones.
    ``rate_window`` (``--rate-window``) replaces its rate-limit window and ``rate_limits``
    (``--rate-limit``) the limits of the groups they name: a target configured otherwise."""
    known = available_profiles()
    if name not in known:
        raise ProfileError(f"unknown profile {name!r}; available: {', '.join(known) or 'none'}")
    profile = read_profile(PROFILES_DIR / f"{name}.toml")
    limits = profile.ratelimits
    if rate_window is not None:
        limits = dataclasses.replace(limits, window_seconds=rate_window)
    if rate_limits:
        given = dict(rate_limits)
        unknown = sorted(set(given) - {g.name for g in limits.groups})
        if unknown:
            raise ProfileError(f"rate limits for unknown group(s) {unknown}; groups: {[g.name for g in limits.groups]}")
        groups = tuple(dataclasses.replace(g, limit=given.get(g.name, g.limit)) for g in limits.groups)
        limits = dataclasses.replace(limits, groups=groups)
    return dataclasses.replace(profile, ratelimits=limits) if limits != profile.ratelimits else profile


def target_profile(settings: Any) -> Profile:
    """The profile as a run's settings configure it (``--profile``, ``--rate-window``,
    ``--rate-limit``)."""
    return load_profile(
        settings.profile,
        rate_window=getattr(settings, "rate_window", None),
        rate_limits=tuple(getattr(settings, "rate_limits", ()) or ()),
    )
