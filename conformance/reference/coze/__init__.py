"""The ``coze`` dialect: the Coze cloud v3 API as the official SDK cozepy 0.20 speaks it.

``ServerConfig(dialect="coze")`` (or ``python -m conformance.reference --dialect coze``)
serves these routes instead of the documented ones, on the same store, fake model,
running-chat registry and SSE writer as the ``doc`` dialect:

====================================  ===================================================
``POST /v3/chat``                      a chat: JSON (status ``in_progress``, answered in
                                       the background) or an event stream
``POST|GET /v3/chat/retrieve``         the chat's current state
``GET /v3/chat/message/list``          the chat's messages (the answer, once completed)
``POST /v3/chat/cancel``               cancel a chat in flight
``POST /v1/bot/create|update|publish`` the draft bot and its publication
``GET /v1/bot/get_online_info``        the published version
``GET /v1/bots/{bot_id}``              published (default) or draft (``is_published=false``)
====================================  ===================================================

The wire contract is docs/coze-contract.md (mirrored in the module docstrings):
Bearer only; every answer ``{"code", "msg", "data"?, "detail": {"logid"}}`` with the
log id in ``x-tt-logid`` too; business errors HTTP 200 with a code (4000 bad request,
4101 another principal's, 4200 unknown, 4015 not published to the API connector, 4016
conversation busy, 4104 not cancellable), auth failures HTTP 401 with code 4100; every
id a JSON string of digits.

Modules: ``envelope`` (codes, the envelope, the log id), ``state`` (chat records),
``chats`` (the chat endpoints and the run of a chat), ``stream`` (the event stream and
its faults), ``bots`` (the bot endpoints), ``app`` (routes and the gate).
"""
