"""Fixtures the conformance modules share, shaped for a real deployment.

* One bot is created and published once per run for the read-only tests, shared by
  every xdist worker through a file lock in pytest's base temp dir; ``--bot-id``
  replaces it with an existing published bot.
* Tests that change a bot make their own with ``new_bot``; at most
  ``MAX_BOTS_PER_PRINCIPAL`` bots per principal per run, named
  ``cz-conf-<run-id>-<n>`` (the spec has no delete endpoint: the README says so).
* A server that fails while a fixture sets up does not ERROR the tests that need it:
  they SKIP as "blocked by <requirement>", and the test owning that requirement FAILs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conformance.oracle.profile import Profile, fill
from conformance.plugin import build_client
from conformance.run.shared_state import SharedState
from conformance.settings import Settings
from conformance.suite.helpers import Bot, blocked, envelope, id_text, id_value
from conformance.transport.client import ApiClient, ExchangeLog, TransportError

MAX_BOTS_PER_PRINCIPAL = 5
#: The icon a profile whose create needs a storage URI gives its bots (Studio checks only
#: that it is not empty: coze-wire §2.5).
ICON_URI = "default_icon/cz-conf-bot.png"
PROMPT = "你是一个测试助手。"
#: shared_state key: why bot creation failed this run, once it has.
CREATE_BLOCKED = "create-blocked"


@pytest.fixture(scope="session")
def shared_state(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> SharedState:
    base = tmp_path_factory.getbasetemp()
    # xdist workers each get basetemp/popen-gwN; their common parent is this run's.
    return SharedState(base.parent if hasattr(request.config, "workerinput") else base)


@pytest.fixture(scope="session")
def run_id(shared_state: SharedState) -> str:
    """Six hex digits naming this run's bots and user ids."""
    return str(shared_state.get_or_create("run_id", lambda: secrets.token_hex(3)))


@pytest.fixture
def user_id(run_id: str, request: pytest.FixtureRequest) -> str:
    """A user id of this test's own: ``cz-conf-<run>-<hash of the test id>``."""
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    return f"cz-conf-{run_id}-{digest}"


@pytest.fixture(scope="session")
def setup_client(conformance_settings: Settings, request: pytest.FixtureRequest) -> Iterator[ApiClient]:
    """A first-principal client for run-wide setup (its exchanges are not a test's)."""
    from conformance.run.pacing import pacer_for

    client = build_client(conformance_settings, log=ExchangeLog(), pacer=pacer_for(request.config))
    yield client
    client.close()


class BotMaker:
    """Creates and publishes bots within the run's per-principal budget, with the
    profile's create and publish endpoints and body templates."""

    def __init__(
        self, api: ApiClient, state: SharedState, run_id: str, principal: str, settings: Settings, profile: Profile
    ) -> None:
        self.api = api
        self.state = state
        self.run_id = run_id
        self.principal = principal
        self.model = settings.model
        self.space_id = settings.space_id
        self.profile = profile

    def reserve_name(self, label: str = "") -> str:
        """A bot name from this principal's budget for the run (SKIPs when spent)."""
        try:
            n = self.state.increment(f"bots-{self.principal}", limit=MAX_BOTS_PER_PRINCIPAL)
        except ValueError:
            raise pytest.skip.Exception(
                f"the run's budget of {MAX_BOTS_PER_PRINCIPAL} bots per principal is spent", _use_item_location=True
            ) from None
        return f"cz-conf-{self.run_id}-{self.principal[-1]}{n}{label}"[: self.profile.bots.name_max]

    def create_body(self, name: str) -> dict[str, Any]:
        """The profile's create body for a bot named ``name``."""
        return dict(fill(self.profile.bots.create_body, self._values(name)))

    def _values(self, name: str) -> dict[str, str | None]:
        return {
            "name": name,
            "description": f"conformance suite bot {name}",
            "icon_url": "https://example.com/cz-conf-icon.png",
            "icon_uri": ICON_URI,
            "prompt": PROMPT,
            "model": self.model,
            "space_id": self.space(),
        }

    def space(self) -> str | None:
        """The workspace bots are made in: --space-id, or else, where the profile has a
        space list, the principal's first space from it (found once per run)."""
        if self.space_id is not None or "space_list" not in {e.name for e in self.profile.endpoints}:
            return self.space_id
        found = self.state.get_or_create(f"space-{self.principal}", self._first_space)
        if "space" not in found:
            raise blocked(self.profile.endpoint("space_list").key, found["why"])
        return str(found["space"])

    def _first_space(self) -> dict[str, str]:
        listing = self.profile.endpoint("space_list")
        try:
            answer = envelope(self.api.request(listing.method, listing.path, json={}))
        except TransportError as exc:
            return {"why": str(exc)}
        spaces = answer.data.get("bot_space_list") if answer.ok else None
        first = spaces[0] if isinstance(spaces, list) and spaces and isinstance(spaces[0], dict) else {}
        space = id_text(first.get("id"))
        return {"space": space} if space else {"why": f"the space list answered {answer.describe()}"}

    def configure(self, bot: Bot) -> None:
        """Set the draft's prompt where the profile configures bots in a step of its own."""
        template = self.profile.bots.configure_body
        if template is None:
            return
        endpoint = self.profile.endpoint("update_info")
        body = fill(template, {**self._values(bot.name), "bot_id": bot.id})
        try:
            answer = envelope(self.api.request(endpoint.method, endpoint.path, json=body))
        except TransportError as exc:
            raise blocked(endpoint.key, str(exc)) from None
        if not answer.ok:
            raise blocked(endpoint.key, f"configure answered {answer.describe()}")

    def create(self, label: str = "") -> Bot:
        broken = self.state.get(CREATE_BLOCKED)
        if broken:
            # Create already failed once this run: skip without spending the budget the
            # test owning BOT-CREATE-001 needs for its own attempt.
            raise blocked(self.profile.endpoint("create").key, broken)
        name = self.reserve_name(label)
        values = self._values(name)
        body = self.create_body(name)
        create = self.profile.endpoint("create")
        try:
            answer = envelope(self.api.request(create.method, create.path, json=body))
        except TransportError as exc:
            raise blocked(create.key, str(exc)) from None
        bot_id = id_text(answer.data.get("bot_id")) if answer.ok else None
        if bot_id is None or not bot_id.isdigit():
            why = f"create answered {answer.describe()}"
            self.state.get_or_create(CREATE_BLOCKED, lambda: why)
            raise blocked(create.key, why)
        return Bot(bot_id, name, f"conformance suite bot {name}", str(values["icon_url"]), str(values["prompt"]))

    def publish(self, bot: Bot) -> Bot:
        publish = self.profile.endpoint("publish")
        self.configure(bot)
        body = fill(self.profile.bots.publish_body, {"bot_id": id_value(publish, "bot_id", bot.id), "space_id": self.space()})
        try:
            answer = envelope(self.api.request(publish.method, publish.path, json=body))
        except TransportError as exc:
            raise blocked(publish.key, str(exc)) from None
        if not answer.ok:
            raise blocked(publish.key, f"publish answered {answer.describe()}")
        return Bot(bot.id, bot.name, bot.description, bot.icon_url, bot.prompt, published=True)


def run_bot(state: SharedState, key: str, make: Callable[[], Bot]) -> Bot:
    """The run's bot ``key``, made once for every test and worker by ``make``. A failed
    make is remembered, so that the other tests (and workers) skip at once instead of each
    spending a bot of the run's budget on the same broken create."""

    def made_once() -> dict[str, Any]:
        try:
            return {"bot": make().__dict__}
        except pytest.skip.Exception as blocked_by:
            return {"blocked": str(blocked_by.msg)}

    made = state.get_or_create(key, made_once)
    if "blocked" in made:
        raise pytest.skip.Exception(made["blocked"], _use_item_location=True)
    return Bot(**made["bot"])


@pytest.fixture(scope="session")
def published_bot(
    conformance_settings: Settings, setup_client: ApiClient, shared_state: SharedState, run_id: str, profile: Profile
) -> Bot:
    """The run's shared, published bot for read-only tests (``--bot-id`` replaces it)."""
    if conformance_settings.bot_id:
        return Bot(conformance_settings.bot_id, "", published=True)
    maker = BotMaker(setup_client, shared_state, run_id, "principal-1", conformance_settings, profile)
    return run_bot(shared_state, "published_bot", lambda: maker.publish(maker.create("s")))


@pytest.fixture
def second_published_bot(
    conformance_settings: Settings, api2: ApiClient, shared_state: SharedState, run_id: str, profile: Profile
) -> Bot:
    """A published bot of the second principal, made once per run (its own budget)."""
    maker = BotMaker(api2, shared_state, run_id, "principal-2", conformance_settings, profile)
    return run_bot(shared_state, "second_published_bot", lambda: maker.publish(maker.create("s")))


@pytest.fixture(scope="session")
def draft_bot(
    conformance_settings: Settings, setup_client: ApiClient, shared_state: SharedState, run_id: str, profile: Profile
) -> Bot:
    """The run's shared bot that is never published (one per run, for the tests that
    need a draft: refusals of a bot not online, display state)."""
    maker = BotMaker(setup_client, shared_state, run_id, "principal-1", conformance_settings, profile)
    return run_bot(shared_state, "draft_bot", lambda: maker.create("d"))


@pytest.fixture
def bot_maker(
    conformance_settings: Settings, api: ApiClient, shared_state: SharedState, run_id: str, profile: Profile
) -> BotMaker:
    """The first principal's bot maker, within the run's budget, with this test's client."""
    return BotMaker(api, shared_state, run_id, "principal-1", conformance_settings, profile)


@pytest.fixture
def new_bot(bot_maker: BotMaker) -> Callable[..., Bot]:
    """Make a draft bot of the first principal (``publish=True`` to publish it too);
    its exchanges are this test's, so a failure's curl replay includes them."""
    maker = bot_maker

    def make(*, publish: bool = False, label: str = "") -> Bot:
        bot = maker.create(label)
        return maker.publish(bot) if publish else bot

    return make


@pytest.fixture
def chat_of(api: ApiClient, profile: Profile, published_bot: Bot, user_id: str) -> Callable[[], dict[str, str]]:
    """Start a chat with the shared bot (one non-stream chat, a new conversation) and
    return its ``conversation_id`` and its ``chat_id`` (the answer's ``id``) as text."""
    from conformance.suite.helpers import chat_body

    def start() -> dict[str, str]:
        chat = profile.endpoint("chat")
        try:
            answer = envelope(api.request(chat.method, chat.path, json=chat_body(published_bot, user_id, "你好")))
        except TransportError as exc:
            raise blocked(chat.key, str(exc)) from None
        data = answer.data if answer.ok else {}
        ids = {"conversation_id": id_text(data.get("conversation_id")), "chat_id": id_text(data.get("id"))}
        if None in ids.values():
            raise blocked(chat.key, f"chat answered {answer.describe()}")
        return {k: str(v) for k, v in ids.items()}

    return start


@pytest.fixture
def conversation_of(api: ApiClient, published_bot: Bot, user_id: str) -> Callable[[], str]:
    """Start a new conversation with the shared bot (one non-stream chat) and return
    its id as text; each call is a conversation of this test's own."""
    from conformance.suite.helpers import chat_body

    def start() -> str:
        try:
            answer = envelope(api.request("POST", "/v3/chat", json=chat_body(published_bot, user_id, "你好")))
        except TransportError as exc:
            raise blocked("CHAT-001", str(exc)) from None
        conversation = id_text(answer.data.get("conversation_id")) if answer.ok else None
        if conversation is None:
            raise blocked("CHAT-RESP-001", f"chat answered {answer.describe()}")
        return conversation

    return start

