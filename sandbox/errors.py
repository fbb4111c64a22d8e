"""The one error of the sandbox's model: a request that Akool would answer with a non-1000 code.

Named ``ErrorAnswer``, not ``AkoolError``: ``worker.akool.errors.AkoolError`` is what the worker's
client raises on reading such an answer; this is what the server raises to *give* one. The HTTP
layer turns it into Akool's envelope, ``{"code": code, "msg": msg, "data": null}`` on HTTP 200.
"""

from __future__ import annotations

from sandbox import codes


class ErrorAnswer(Exception):
    """Answer this request with ``code`` and ``msg`` (Akool's message for the code by default)."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(code, msg or codes.message(code))
        self.code = code
        self.msg = msg or codes.message(code)
