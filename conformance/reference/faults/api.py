"""Faults of auth, ownership, rate limits, bots and timestamps.

Each fault is a one-to-three-line branch, marked ``fault:``, at the one place it breaks:
``auth.py`` (credentials), ``access.py`` (conversation ownership), ``bots.py`` (the bot
endpoints and their timestamps), ``ratelimit.py`` and ``runtime.py`` (limits, the 429,
publish versions). ``requirement`` is the catalogue id whose check FAILs against a
server with only that fault on (conformance/suite: test_auth, test_isolation,
test_bots, the rate-limit module); ``level`` is that requirement's level.

Where one fault cannot help failing a few other requirements too (a refused mode on an
endpoint fails every test that calls it), it is scoped as narrowly as the requirement
allows: the mode-refusal faults refuse on ONE endpoint, not the whole class.
"""

from __future__ import annotations

from .base import Fault
from .base import fault as _fault

_AUTH = (
    _fault(
        "auth_no_check",
        "AUTH-005",
        "No credential check at all: a request without credentials (or with wrong ones) is served as the first principal.",
    ),
    _fault("auth_any_bearer", "AUTH-006", "Any bearer token is accepted: a wrong API key is served as the first principal."),
    _fault("auth_any_cookie", "AUTH-007", "Any session_key cookie is accepted: a wrong one is served as the first principal."),
    _fault(
        "auth_bearer_refused_on_openapi",
        "AUTH-001",
        "The class's own mode refused: POST /v3/chat/cancel (OpenAPI) refuses Authorization: Bearer with 401.",
        collateral="The suite calls cancel with the Bearer key everywhere: every cancel of the cancel and isolation"
        " tests (CANCEL-*, ISO-006) and every cancel case of the fuzz (REQ-001, REQ-002) is answered 401, not judged.",
    ),
    _fault(
        "auth_cookie_refused_on_webapi",
        "AUTH-002",
        "The class's own mode refused: POST /api/conversation/chat (WebAPI) refuses the session_key cookie with 401.",
    ),
    # auth_modes="by_class" is the legal variant of these two; as faults each declares
    # the SHOULD it breaks, one class at a time.
    _fault(
        "auth_cookie_refused_on_openapi",
        "AUTH-003",
        "The other mode refused on OpenAPI: /v1/* and /v3/* answer a session_key cookie alone with 401.",
        level="SHOULD",
    ),
    _fault(
        "auth_bearer_refused_on_webapi",
        "AUTH-004",
        "The other mode refused on WebAPI: /api/* answers Authorization: Bearer alone with 401.",
        level="SHOULD",
    ),
)

_ISOLATION = (
    _fault(
        "iso_online_info_other_bot",
        "ISO-001",
        "get_online_info serves another principal's bot (no owner check on that endpoint).",
    ),
    _fault("iso_bot_detail_other_bot", "ISO-002", "/v1/bots/:bot_id serves another principal's bot."),
    _fault(
        "iso_update_other_bot",
        "ISO-003",
        "update_display_info changes another principal's bot and answers code 0.",
    ),
    _fault(
        "iso_publish_other_bot",
        "ISO-004",
        "publish publishes another principal's bot (its online version and version change) and answers code 0.",
    ),
    _fault(
        "iso_conversation_refusal_quotes_history",
        "ISO-005",
        "A chat naming another principal's conversation is refused, but the refusal quotes that conversation's"
        " first message.",
    ),
    _fault(
        "iso_conversation_owner_unchecked",
        "ISO-006",
        "A conversation's owner is never checked: another principal's cancel answers code 0 and stops the owner's"
        " stream (a chat naming the conversation is still refused when it names another bot).",
    ),
)

_RATE = (
    _fault("rate_chat_never_429", "RATE-001", "The chat group (/v3/chat, cancel, /api/conversation/chat) is never limited."),
    _fault("rate_chat_limit_10x", "RATE-001", "The chat group allows 600 requests per minute, ten times the documented 60."),
    _fault(
        "rate_management_limit_half",
        "RATE-005",
        "The management group admits half its documented limit (15 per minute, not 30).",
        level="SHOULD",
    ),
    _fault("rate_management_never_429", "RATE-002", "The management group (/api/draftbot/*) is never limited."),
    _fault("rate_info_never_429", "RATE-003", "The info group (the two /v1 endpoints) is never limited."),
    _fault("rate_429_plain_text", "RATE-004", "A refused request gets HTTP 429 with a text/plain body, no envelope."),
    _fault("rate_429_wrong_code", "RATE-004", "A refused request gets HTTP 429 with a JSON body whose code is 4290, not 429."),
    _fault(
        "rate_no_recovery",
        "BP-001",
        "No recovery after a 429: a principal refused once in a group stays refused after Retry-After and the window.",
    ),
)

_BOTS = (
    # POST /api/draftbot/create
    _fault("bot_create_without_data", "BOT-CREATE-001", "create answers code 0 without a data object (the bot is made)."),
    _fault("bot_create_name_optional", "BOT-CREATE-002", "create without name is accepted (an unnamed bot)."),
    _fault("bot_create_id_float", "BOT-CREATE-003", "create's data.bot_id is a JSON float (the 19-digit id loses digits)."),
    _fault("bot_create_id_prefixed", "BOT-CREATE-003", "create's data.bot_id is a non-decimal string, 'bot_<digits>'."),
    _fault("bot_create_no_echo", "BOT-CREATE-004", "create's data does not echo description and icon_url."),
    _fault("bot_create_status_online", "BOT-CREATE-005", "create's data.status is 'online', not 'draft'."),
    _fault("ts_ms_create", "BOT-CREATE-006", "create's created_at and updated_at are milliseconds, not seconds."),
    # POST /api/draftbot/update_display_info
    _fault("bot_update_no_echo", "BOT-UPDATE-001", "update stores the new values but answers the old ones."),
    _fault("bot_update_bot_id_optional", "BOT-UPDATE-002", "update without bot_id is accepted (code 0, bot 0)."),
    _fault("ts_ms_update", "BOT-UPDATE-003", "update's updated_at is milliseconds, not seconds."),
    _fault("bot_update_unknown_ok", "BOT-UPDATE-004", "update of an unknown bot_id answers code 0 with data."),
    # POST /api/draftbot/publish
    _fault("bot_publish_status_published", "BOT-PUBLISH-001", "publish's data.status is 'published', not 'online'."),
    _fault("bot_publish_bot_id_optional", "BOT-PUBLISH-002", "publish without bot_id is accepted (code 0, bot 0)."),
    _fault("bot_publish_no_version", "BOT-PUBLISH-003", "publish's data has no version."),
    _fault("bot_publish_version_string", "BOT-PUBLISH-003", "publish's data.version is a string ('1'), not an integer."),
    _fault(
        "bot_publish_version_starts_at_2", "BOT-PUBLISH-004", "A bot's first publish is version 2, not 1.", level="SHOULD"
    ),
    _fault(
        "bot_publish_version_stuck",
        "BOT-PUBLISH-004",
        "Every publish is version 1: a later publish is not greater.",
        level="SHOULD",
    ),
    _fault("ts_ms_publish", "BOT-PUBLISH-005", "publish's published_at is milliseconds, not seconds."),
    _fault("bot_publish_unknown_ok", "BOT-PUBLISH-006", "publish of an unknown bot_id answers code 0 with data."),
    # GET /v1/bot/get_online_info
    _fault("bot_online_missing_display", "BOT-ONLINE-001", "get_online_info's data has no icon_url."),
    _fault("bot_online_bot_id_optional", "BOT-ONLINE-002", "get_online_info without bot_id answers code 0 (bot 0)."),
    _fault("bot_online_status_published", "BOT-ONLINE-003", "get_online_info's data.status is 'published', not 'online'."),
    _fault("ts_ms_online", "BOT-ONLINE-004", "get_online_info's published_at is milliseconds, not seconds."),
    _fault("bot_online_model_object", "BOT-ONLINE-005", "get_online_info's data.model is an object, not a string."),
    _fault(
        "bot_online_stale",
        "BOT-ONLINE-006",
        "get_online_info shows the first publish's snapshot forever: stale after an update and republish.",
    ),
    _fault("bot_online_unknown_ok", "BOT-ONLINE-007", "get_online_info of an unknown bot_id answers code 0 with data."),
    _fault(
        "bot_online_not_int64_ok",
        "BOT-ONLINE-008",
        "get_online_info?bot_id=<not an int64> answers code 0 with the data of a bot 0.",
    ),
    # GET /v1/bots/:bot_id
    _fault("bot_detail_missing_display", "BOT-GET-001", "/v1/bots/:bot_id's data has no icon_url."),
    _fault(
        "bot_detail_not_int64_ok",
        "BOT-GET-002",
        "/v1/bots/<not an int64> answers code 0 with the data of a bot 0.",
    ),
    _fault(
        "bot_detail_not_int64_500",
        "BOT-GET-002",
        "/v1/bots/<letters> answers 500: the segment goes to int() unchecked.",
    ),
    _fault("bot_detail_no_version", "BOT-GET-003", "/v1/bots/:bot_id's data has no version, even when published."),
    _fault("bot_detail_no_prompt", "BOT-GET-004", "/v1/bots/:bot_id's data has no prompt."),
    _fault("bot_detail_model_object", "BOT-GET-004", "/v1/bots/:bot_id's data.model is an object, not a string."),
    _fault(
        "bot_detail_tools_strings",
        "BOT-GET-005",
        "/v1/bots/:bot_id's data.tools is an array of names (strings), not of objects with a type.",
    ),
    _fault("ts_ms_detail", "BOT-GET-006", "/v1/bots/:bot_id's created_at, updated_at, published_at are milliseconds."),
    _fault(
        "bot_detail_stale",
        "BOT-GET-007",
        "/v1/bots/:bot_id shows the first publish's snapshot forever: stale after an update and republish.",
    ),
    _fault("bot_detail_unknown_ok", "BOT-GET-008", "/v1/bots/<unknown digits> answers code 0 with data."),
)

API_FAULTS: tuple[Fault, ...] = (*_AUTH, *_ISOLATION, *_RATE, *_BOTS)
