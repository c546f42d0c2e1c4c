"""The ``studio`` dialect: Coze Studio / Coze Plus as docs/studio-contract.md describes it.

``ServerConfig(dialect="studio")`` (or ``python -m conformance.reference --dialect studio``)
serves these routes, on the same store, fake model, running-chat registry and SSE writer
as the other dialects:

=====================================================================  =======================
``POST /api/passport/web/email/login/``                                 login: cookie session_key
``POST /api/playground_api/space/list``                                 the personal space
``POST /api/permission_api/pat/create_personal_access_token_and_permission``  mint a PAT
``POST /v3/chat``, ``GET /v3/chat/retrieve``, ``GET /v3/chat/message/list``  chat (capabilities)
``POST /v3/chat/cancel``                                                cancel (the stream goes on)
``GET /v1/bot/get_online_info``, ``GET /v1/bots/{bot_id}``              the published BotInfo
``POST /api/draftbot/create``, ``.../update_display_info``, ``.../get_display_info``,
``.../publish``, ``/api/playground_api/draftbot/update_draft_bot_info``  the draft and its publication
``POST /api/conversation/chat``                                         the WebAPI run (SSE)
=====================================================================  =======================

Auth by path alone: Bearer on ``/v1`` and ``/v3``, the ``session_key`` cookie on ``/api``.
The envelope ``{"code","msg","data"?}`` (a few endpoints answer other shapes), every answer
with ``X-Log-ID: <uuid4>``, business errors HTTP 200 with a 9-digit code, bind errors HTTP 400
code 400; no rate limiting. The ``studio_*`` knobs of ServerConfig choose the capabilities and
the legal other readings; faults/studio.py breaks one STUDIO-* requirement per fault.

Modules: ``envelope`` (codes, answers), ``state`` (identities, sessions, chats), ``stream``
(event-stream framing), ``passport`` (login, spaces, PATs), ``chats`` (/v3/chat and friends),
``bots`` (bot endpoints), ``run`` (/api/conversation/chat), ``app`` (routes and the gate).
"""
