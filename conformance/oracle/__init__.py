"""The oracle: what the API must do, and the judges that say whether an answer does it.

The requirement catalogue (``catalogue``), the wire rules as data (``profile``,
``profiles/``), the JSON Schemas (``schemas``), the byte-level SSE checker (``sse``), the
chat-stream grammar (``grammar``), the envelope judge (``envelope_judge``), the record of
each check (``outcomes``), the request strategies of the fuzz (``strategies``) and the
OpenAPI export (``openapi``). Nothing here sends a request or knows pytest's run.
"""
