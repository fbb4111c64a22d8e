"""A small HTTP client for the web service's tests: the path goes out exactly as written (no
normalisation of ``..`` or ``%2f``), the body as given, and every answer is read whatever its
status."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.web.jsonerrors import ErrorCode

CODES = frozenset(c.value for c in ErrorCode)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of an error answer (fails the test when there is none, or when
        its ``code`` is not one of the documented list or not one for this status)."""
        doc = self.json
        assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), self.raw[:300]
        assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"]
        code = doc["error"].get("code")
        assert code in CODES, self.raw[:300]
        assert ErrorCode(code).status == self.status, (code, self.status)
        return dict(doc["error"])


class WebClient:
    def __init__(self, port: int, token: str | None) -> None:
        self.port = port
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """``body``: bytes as they are, anything else as JSON (with its Content-Type).
        ``token``: "" for this client's token, None for no Authorization header."""
        sent = dict(headers or {})
        data: bytes | None = None
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        use = self.token if token == "" else token
        if use is not None:
            sent["Authorization"] = f"Bearer {use}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, body, **kw)
