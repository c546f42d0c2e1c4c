"""The official Python SDK, cozepy 0.20 (unmodified), as a witness of the coze dialect.

If the reference server's coze dialect (conformance/reference/coze/) speaks the Coze
cloud v3 API as the contract says, the SDK that real applications use against the
cloud works against it too: bots created, updated, published and read; chats streamed
(every event parsed into cozepy's models, none UNKNOWN), polled, listed and canceled;
errors raised as ``CozeAPIError`` with the cloud's codes.

cozepy is imported inside a fixture: its import warns (``AuthlibDeprecationWarning``,
from authlib, which it imports), and only a warning raised while a test runs can be
filtered by this module's mark (collection runs under the project's ``error`` filter).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.reference import DEV_PRINCIPALS, ReferenceServer, ServerConfig

pytestmark = pytest.mark.filterwarnings("ignore::authlib.deprecate.AuthlibDeprecationWarning")

ALICE, BOB = DEV_PRINCIPALS
UNKNOWN_BOT = "7000000000000000001"


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(ServerConfig(dialect="coze", token_delay=0.02)) as srv:
        yield srv


@pytest.fixture
def cozepy() -> Any:
    return importlib.import_module("cozepy")


@pytest.fixture
def client(server: ReferenceServer, cozepy: Any) -> Iterator[Callable[[str], Any]]:
    """``client(api_key)``: a Coze client of the server; its connections closed after the test."""
    opened: list[Any] = []

    def make(api_key: str) -> Any:
        http = cozepy.SyncHTTPClient(timeout=10)
        opened.append(http)
        return cozepy.Coze(auth=cozepy.TokenAuth(api_key), base_url=server.url, http_client=http)

    yield make
    for http in opened:
        http.close()


@pytest.fixture
def coze(client: Callable[[str], Any]) -> Any:
    return client(ALICE.api_key)


@pytest.fixture
def bot_id(server: ReferenceServer) -> str:
    return server.seed_published_bot("alice", name="Witness bot")


def question(cozepy: Any, text: str) -> Any:
    return cozepy.Message.build_user_question_text(text)


def stream_chat(coze: Any, cozepy: Any, bot_id: str, text: str, conversation_id: str | None = None) -> SimpleNamespace:
    events = list(
        coze.chat.stream(
            bot_id=bot_id, user_id="witness", conversation_id=conversation_id, additional_messages=[question(cozepy, text)]
        )
    )
    kinds = cozepy.ChatEventType
    completed = [e for e in events if e.event == kinds.CONVERSATION_CHAT_COMPLETED]
    assert len(completed) == 1, [e.event for e in events]
    return SimpleNamespace(events=events, chat=completed[0].chat)


# --------------------------------------------------------------------------- bots


def test_a_bot_is_created_updated_published_and_read_in_both_api_versions(coze: Any, cozepy: Any) -> None:
    created = coze.bots.create(
        space_id="7000000000000000100",
        name="witness v1",
        description="made by cozepy",
        prompt_info=cozepy.BotPromptInfo(prompt="be brief"),
        onboarding_info=cozepy.BotOnboardingInfo(prologue="hello", suggested_questions=["why?"]),
    )
    assert created.bot_id.isdigit()
    coze.bots.update(bot_id=created.bot_id, name="witness v2")
    published = coze.bots.publish(bot_id=created.bot_id)
    assert published.bot_id == created.bot_id and published.version == "1"
    coze.bots.update(bot_id=created.bot_id, name="witness draft", prompt_info=cozepy.BotPromptInfo(prompt="be long"))

    online = coze.bots.retrieve(bot_id=created.bot_id)  # v1: /v1/bot/get_online_info
    assert (online.bot_id, online.name, online.version) == (created.bot_id, "witness v2", "1")
    assert online.prompt_info.prompt == "be brief" and online.onboarding_info.prologue == "hello"
    assert online.onboarding_info.suggested_questions == ["why?"]
    assert online.bot_mode == 0 and online.model_info.model_id  # BotMode.SINGLE_AGENT

    v2 = coze.bots.retrieve(bot_id=created.bot_id, use_api_version=2)  # /v1/bots/:bot_id, published by default
    assert (v2.bot_id, v2.name) == (created.bot_id, "witness v2")
    draft = coze.bots.retrieve(bot_id=created.bot_id, use_api_version=2, is_published=False)
    assert (draft.name, draft.prompt_info.prompt) == ("witness draft", "be long")


def test_a_bot_name_over_20_characters_is_refused_with_4000(coze: Any, cozepy: Any) -> None:
    with pytest.raises(cozepy.CozeAPIError) as caught:
        coze.bots.create(space_id="7000000000000000100", name="x" * 21)
    assert caught.value.code == 4000


def test_an_unknown_bot_raises_4200_with_the_log_id(coze: Any, cozepy: Any) -> None:
    with pytest.raises(cozepy.CozeAPIError) as caught:
        coze.bots.retrieve(bot_id=UNKNOWN_BOT)
    assert caught.value.code == 4200 and caught.value.logid
    with pytest.raises(cozepy.CozeAPIError) as caught:
        coze.chat.create(bot_id=UNKNOWN_BOT, user_id="witness", additional_messages=[question(cozepy, "hi")])
    assert caught.value.code == 4200


def test_a_bot_never_published_raises_4015(coze: Any, cozepy: Any) -> None:
    draft = coze.bots.create(space_id="7000000000000000100", name="never published")
    asked = {"bot_id": draft.bot_id, "user_id": "witness", "additional_messages": [question(cozepy, "hi")]}
    with pytest.raises(cozepy.CozeAPIError) as caught:
        coze.chat.create(**asked)
    assert caught.value.code == 4015
    with pytest.raises(cozepy.CozeAPIError) as caught:  # a stream:true chat: the refusal is a JSON envelope
        list(coze.chat.stream(**asked))
    assert caught.value.code == 4015


def test_another_principals_bot_and_a_wrong_key_are_refused(
    server: ReferenceServer, cozepy: Any, coze: Any, client: Callable[[str], Any]
) -> None:
    bobs = server.seed_published_bot("bob")
    with pytest.raises(cozepy.CozeAPIError) as caught:
        coze.bots.retrieve(bot_id=bobs)
    assert caught.value.code == 4101
    stranger = client("not-a-key")
    with pytest.raises(cozepy.CozeAPIError) as caught:
        stranger.bots.retrieve(bot_id=bobs)
    assert caught.value.code == 4100


# --------------------------------------------------------------------------- chat


def test_a_stream_parses_into_cozepy_models_and_its_deltas_join_to_the_answer(coze: Any, cozepy: Any, bot_id: str) -> None:
    kinds = cozepy.ChatEventType
    result = stream_chat(coze, cozepy, bot_id, "hello there")
    names = [e.event for e in result.events]
    assert kinds.UNKNOWN not in names and all(isinstance(n, kinds) for n in names)
    assert names[:2] == [kinds.CONVERSATION_CHAT_CREATED, kinds.CONVERSATION_CHAT_IN_PROGRESS]
    assert names[-1] == kinds.CONVERSATION_CHAT_COMPLETED  # done is consumed by cozepy, then EOF
    deltas = [e.message for e in result.events if e.event == kinds.CONVERSATION_MESSAGE_DELTA]
    completed = [e.message for e in result.events if e.event == kinds.CONVERSATION_MESSAGE_COMPLETED]
    assert len(deltas) >= 5 and len(completed) == 1
    answer = completed[0]
    assert "".join(d.content for d in deltas) == answer.content and "hello there" in answer.content
    assert (answer.role, answer.type, answer.content_type) == (
        cozepy.MessageRole.ASSISTANT,
        cozepy.MessageType.ANSWER,
        cozepy.MessageContentType.TEXT,
    )
    chat = result.chat
    assert chat.status == cozepy.ChatStatus.COMPLETED and chat.bot_id == bot_id
    assert {answer.chat_id, *(d.chat_id for d in deltas)} == {chat.id}
    assert {answer.conversation_id, *(d.conversation_id for d in deltas)} == {chat.conversation_id}
    usage = chat.usage
    assert usage.output_count > 0 and usage.input_count > 0
    assert usage.token_count == usage.input_count + usage.output_count
    assert isinstance(chat.created_at, int) and isinstance(chat.completed_at, int)


def test_a_chat_continues_its_conversation(coze: Any, cozepy: Any, bot_id: str) -> None:
    first = stream_chat(coze, cozepy, bot_id, "one")
    second = stream_chat(coze, cozepy, bot_id, "two", conversation_id=first.chat.conversation_id)
    assert second.chat.conversation_id == first.chat.conversation_id and second.chat.id != first.chat.id
    answer = next(e.message for e in second.events if e.event == cozepy.ChatEventType.CONVERSATION_MESSAGE_COMPLETED)
    assert answer.content.startswith("Turn 2")


def test_create_and_poll_retrieves_until_completed_then_lists_the_answer(coze: Any, cozepy: Any, bot_id: str) -> None:
    created = coze.chat.create(bot_id=bot_id, user_id="witness", additional_messages=[question(cozepy, "poll me")])
    assert created.status == cozepy.ChatStatus.IN_PROGRESS
    poll = coze.chat.create_and_poll(bot_id=bot_id, user_id="witness", additional_messages=[question(cozepy, "poll me")])
    assert poll.chat.status == cozepy.ChatStatus.COMPLETED
    assert poll.chat.usage.token_count == poll.chat.usage.input_count + poll.chat.usage.output_count > 0
    answers = [m for m in poll.messages if m.role == cozepy.MessageRole.ASSISTANT and m.type == cozepy.MessageType.ANSWER]
    assert len(answers) == 1 and "poll me" in answers[0].content and answers[0].chat_id == poll.chat.id


def test_cancel_of_a_non_stream_chat_in_flight_reads_canceled(coze: Any, cozepy: Any, bot_id: str) -> None:
    chat = coze.chat.create(bot_id=bot_id, user_id="witness", additional_messages=[question(cozepy, "stop me")])
    canceled = coze.chat.cancel(conversation_id=chat.conversation_id, chat_id=chat.id)
    assert (canceled.id, canceled.status) == (chat.id, cozepy.ChatStatus.CANCELED)
    assert coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id).status == cozepy.ChatStatus.CANCELED
    with pytest.raises(cozepy.CozeAPIError) as caught:  # a finished chat can't be canceled again
        coze.chat.cancel(conversation_id=chat.conversation_id, chat_id=chat.id)
    assert caught.value.code == 4104


def test_cancel_of_a_stream_in_flight_ends_it_with_an_error_event(coze: Any, cozepy: Any, bot_id: str) -> None:
    kinds = cozepy.ChatEventType
    stream = coze.chat.stream(bot_id=bot_id, user_id="witness", additional_messages=[question(cozepy, "stop me too")])
    seen: list[Any] = []
    canceled: list[Any] = []

    def read() -> None:
        for event in stream:
            seen.append(event)
            if event.event == kinds.CONVERSATION_MESSAGE_DELTA and not canceled:
                chat = seen[0].chat
                canceled.append(coze.chat.cancel(conversation_id=chat.conversation_id, chat_id=chat.id))

    with pytest.raises(Exception, match="error event") as caught:  # cozepy raises a bare Exception on `error`
        read()
    assert "chat canceled" in str(caught.value)
    assert [c.status for c in canceled] == [cozepy.ChatStatus.CANCELED]
    assert kinds.CONVERSATION_CHAT_COMPLETED not in [e.event for e in seen]
    chat = seen[0].chat
    assert coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id).status == cozepy.ChatStatus.CANCELED
