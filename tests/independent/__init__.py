"""An independent Coze Plus Agent API server, written from the spec page alone.

It exists to prove the suite's precision: a server by different hands
than ``conformance/reference/``, speaking the other legal readings of READING.md, must
pass the suite. It imports nothing from ``conformance`` (a test checks this). A second
dialect, ``coze`` (``coze_dialect.py``: the Coze cloud v3 API as the official SDKs speak it),
is chosen with ``INDEPENDENT_DIALECT=coze`` or ``--dialect coze``; a third, ``studio``
(``studio_dialect.py``: Coze Studio / Coze Plus as ``docs/studio-contract.md`` fixes it),
with ``INDEPENDENT_DIALECT=studio`` or ``--dialect studio``.
"""
