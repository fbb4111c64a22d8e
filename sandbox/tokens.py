"""The sandbox's one account: its credentials, ``getToken``'s JWTs, and the auth of each call.

Tokens are HS256 JWTs (with ``iat``/``exp``) signed by a key drawn once per server; a token is
valid while it is in the book and unexpired, so ``revoke_tokens`` and ``reset`` just empty the
book. ``TokenBook`` is not thread-safe by itself: ``SandboxState`` calls it under its lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from sandbox import codes
from sandbox.errors import ErrorAnswer

UID = 101690  # the account's uid, in tokens and job records


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def secrets_code(key: bytes) -> str:
    """A stable, meaningless ``code`` claim, so tokens look like Akool's."""
    return hashlib.sha256(key).hexdigest()[:8]


class TokenBook:
    """The credentials to accept and the tokens issued so far (token -> expiry, epoch seconds)."""

    def __init__(
        self, *, api_key: str, client_id: str, client_secret: str, clock: Callable[[], float]
    ) -> None:
        self.api_key, self.client_id, self.client_secret = api_key, client_id, client_secret
        self._clock = clock
        self._key = os.urandom(32)
        self._expiry: dict[str, float] = {}

    def __repr__(self) -> str:  # never show the secrets
        return f"TokenBook(tokens={len(self._expiry)})"

    def verify_client(self, body: Any) -> None:
        """``getToken``'s body: not an object → 1003, a field empty → 1102, wrong → 1101."""
        if not isinstance(body, Mapping):
            raise ErrorAnswer(codes.PARAM_ERROR, "request body must be a JSON object")
        cid, secret = body.get("clientId"), body.get("clientSecret")
        if not cid or not secret:
            raise ErrorAnswer(codes.EMPTY_TOKEN, "clientId and clientSecret cannot be empty")
        if not (
            isinstance(cid, str)
            and isinstance(secret, str)
            and hmac.compare_digest(cid.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        ):
            raise ErrorAnswer(codes.INVALID_TOKEN)

    def mint(self, ttl_seconds: float) -> str:
        """A new token valid for ``ttl_seconds`` (its ``exp`` claim rounds to whole seconds)."""
        iat = int(self._clock())
        claims = {
            "id": "64db241f6d9e5c4bd136c187",
            "type": 1,
            "from": 2,
            "email": "sandbox@example.invalid",
            "firstName": "Sandbox",
            "uid": UID,
            "code": secrets_code(self._key),
            "iat": iat,
            "exp": iat + max(1, int(ttl_seconds)),
            "jti": os.urandom(8).hex(),
        }
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64url(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        token = f"{head}.{body}.{sig}"
        self._expiry[token] = self._clock() + ttl_seconds
        return token

    def check(self, authorization: str | None, api_key: str | None) -> None:
        """Bearer wins over x-api-key when both carry a value, as Akool documents.

        Missing → 1102; a wrong scheme, an unknown, revoked or expired token, or a wrong key → 1101.
        """
        token = None
        if authorization and authorization.strip():
            scheme, _, rest = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise ErrorAnswer(codes.INVALID_TOKEN)
            token = rest.strip() or None
        if token is not None:
            expires = self._expiry.get(token)
            if expires is None or self._clock() >= expires:
                raise ErrorAnswer(codes.INVALID_TOKEN)
            return
        if api_key:
            if not hmac.compare_digest(api_key.encode(), self.api_key.encode()):
                raise ErrorAnswer(codes.INVALID_TOKEN)
            return
        raise ErrorAnswer(codes.EMPTY_TOKEN)

    def forget(self) -> None:
        """Invalidate every token issued so far."""
        self._expiry.clear()
