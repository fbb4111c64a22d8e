"""Who is looking at the dashboard: a person logged in with a session cookie, automation with a
Bearer token, or anyone (``API_AUTH=off``), and the CSRF token each form must carry.

A person logs in with one of the API tokens (compared as worker/web/bearer.py compares them).
The session is kept in Redis, ``{KEY_PREFIX}:websession:{sha256 of the session id}``, for
``SESSION_SECONDS``; the cookie holds only the random session id (HttpOnly, SameSite=Strict,
Secure on https). Neither the cookie nor Redis holds the token: the record keeps an HMAC of it
(keyed by the token, so it says nothing about it), checked against the current tokens on every
request, so removing a token from API_TOKENS ends every session made with it at the next
restart of the service, and logging out deletes the record (a copied cookie dies with it).

Every state-changing request of a session carries its CSRF token (a form field, or the
``X-CSRF-Token`` header for the API), compared in constant time. Before login, and with
``API_AUTH=off``, the token is a random cookie of its own that the form repeats (double submit).

A wrong token in the login form counts against the client's address as a wrong Bearer token
does (worker/web/throttle.py): past ``AUTH_FAILURE_LIMIT`` the form answers 429.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis
from flask import Flask, Response, current_app, g, request
from werkzeug.wrappers import Response as BaseResponse

from config.settings import Settings
from worker.web.bearer import matching_token, token_ok
from worker.web.jsonerrors import ApiError
from worker.web.throttle import Throttle

EXTENSION = "akool_audio.sessions"
COOKIE = "akool_audio_session"
CSRF_COOKIE = "akool_audio_csrf"  # before login, and with API_AUTH=off
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_FINGERPRINT = b"akool-audio dashboard session v1"


def fingerprint(token: str) -> str:
    """What a session keeps of the token it was made with: an HMAC keyed by the token."""
    return hmac.new(token.encode("utf-8", "replace"), _FINGERPRINT, hashlib.sha256).hexdigest()


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Two non-empty secrets compared in constant time."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Viewer:
    """Who asks: ``session`` (a logged-in person), ``bearer`` (a token in the header: no CSRF
    needed, a browser never adds it on its own) or ``open`` (API_AUTH=off)."""

    kind: Literal["session", "bearer", "open"]
    csrf: str | None  # what a form of this viewer must carry (None: nothing, a Bearer caller)
    sid: str | None = None


class Sessions:
    """The dashboard's sessions in ``r`` for the tokens of ``settings``."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.settings = settings
        self.auth = settings.api_auth
        self.tokens = settings.api_tokens
        self._prints = tuple(fingerprint(t) for t in self.tokens)
        self.throttle = Throttle(r, settings)

    def key(self, sid: str) -> str:
        return self.settings.key("websession", _digest(sid))

    def login(self, given: str) -> tuple[str, str] | None:
        """A new session for ``given`` when it is one of the tokens: (session id, CSRF token).
        Raises ApiError (429) while the client's address is throttled."""
        address = request.remote_addr or ""
        token = matching_token(given, self.tokens)
        if token is None:
            self.throttle.failed(address)
            return None
        self.throttle.admit(address)
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        record: dict[str, str | float] = {
            "fp": fingerprint(token),
            "csrf": csrf,
            "created": round(time.time(), 3),
        }
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(sid), mapping=cast(Any, record))
            pipe.expire(self.key(sid), SESSION_SECONDS)
            pipe.execute()
        return sid, csrf

    def find(self, sid: str | None) -> Viewer | None:
        """The session of ``sid``, when it exists and its token is still one of the tokens (a
        session whose token was removed is deleted here)."""
        if not sid or len(sid) > 128:
            return None
        record = cast(dict[str, str], self.r.hgetall(self.key(sid)))
        if not record:
            return None
        fp = record.get("fp", "")
        known = False
        for p in self._prints:
            known |= same(fp, p)
        if not known:
            self.r.delete(self.key(sid))
            return None
        return Viewer("session", record.get("csrf") or None, sid)

    def logout(self, sid: str) -> None:
        self.r.delete(self.key(sid))

    # -- the current request ---------------------------------------------------------------

    def viewer(self) -> Viewer | None:
        """Who sends the current request (None: nobody we know; the page asks for a login)."""
        if "akool_viewer" in g:
            return cast(Viewer | None, g.akool_viewer)
        found: Viewer | None
        if not self.auth:
            found = Viewer("open", anonymous_csrf())
        elif token_ok(request.headers.get("Authorization"), self.tokens):
            found = Viewer("bearer", None)
        else:
            found = self.find(request.cookies.get(COOKIE))
        g.akool_viewer = found
        return found

    def api_allowed(self) -> bool:
        """For the /v1 routes (worker/web/bearer.py): True for a session's GET, or for its
        other requests carrying its CSRF header; a session's POST without it is a 403."""
        if not request.cookies.get(COOKIE):
            return False
        found = self.find(request.cookies.get(COOKIE))
        if found is None:
            return False
        if request.method in SAFE_METHODS:
            return True
        if same(request.headers.get(CSRF_HEADER), found.csrf):
            return True
        raise ApiError(403, f"a request of a dashboard session needs its {CSRF_HEADER} header")

    def csrf_ok(self, viewer: Viewer, given: str | None) -> bool:
        """Whether a state-changing request of ``viewer`` carries its CSRF token."""
        if viewer.kind == "bearer":
            return True
        return same(given, viewer.csrf)


def sessions() -> Sessions:
    return cast(Sessions, current_app.extensions[EXTENSION])


def install(app: Flask, r: redis.Redis, settings: Settings) -> Sessions:
    """Keep the dashboard's sessions of ``app`` in ``r``; sets the anonymous CSRF cookie on the
    answers that handed one out."""
    found = Sessions(r, settings)
    app.extensions[EXTENSION] = found
    app.after_request(_set_anonymous_csrf)
    return found


def anonymous_csrf() -> str:
    """The CSRF token of a request without a session: the cookie's, or a new one (set on the
    answer)."""
    given = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(given) <= 128 and given.replace("-", "").replace("_", "").isalnum():
        return given
    if "akool_new_csrf" not in g:
        g.akool_new_csrf = secrets.token_urlsafe(32)
    return cast(str, g.akool_new_csrf)


def _set_anonymous_csrf(response: Response) -> Response:
    new = g.get("akool_new_csrf")
    if new:
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="Strict", secure=request.is_secure, path="/"
        )
    return response


def set_session_cookie(response: BaseResponse, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )


def clear_session_cookie(response: BaseResponse) -> None:
    response.delete_cookie(
        COOKIE, httponly=True, samesite="Strict", secure=request.is_secure, path="/"
    )
