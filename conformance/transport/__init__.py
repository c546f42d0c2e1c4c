"""How the suite talks to a target: the HTTP client with hard deadlines and size caps
(``client``, ``deadline``), the redacted exchange log and curl replay (``exchange``,
``redact``), and the preflight that refuses a target which is not this API
(``preflight``). Nothing here judges an answer."""
