"""Flower with nothing open but a bare health check.

Flower 2.2 asks for its credentials on its pages and ``/api/*`` but leaves ``/metrics`` (task
names, worker names, counts) and its static files open. :func:`close` puts every handler of
Flower behind the same check, ``/healthcheck`` (it answers ``OK``, nothing more) and the
OAuth login and logout pages excepted. A handler a later Flower adds is closed too: the list is
of what stays open, not of what is closed. flowerconfig.py calls it in the Flower process,
before Flower builds its application from the same list.
"""

from __future__ import annotations

from typing import Any

import tornado.web
from flower import urls
from flower.views import BaseHandler
from flower.views.auth import LoginHandler, LogoutHandler
from flower.views.monitor import Healthcheck
from tornado.routing import URLSpec

#: The handlers that answer without credentials.
OPEN: tuple[type[Any], ...] = (Healthcheck, LoginHandler, LogoutHandler)
_GUARDED = "_akool_guarded"


def _guarded(cls: type[tornado.web.RequestHandler]) -> type[tornado.web.RequestHandler]:
    if cls in OPEN or getattr(cls, _GUARDED, False):
        return cls

    class Guarded(cls):  # type: ignore[valid-type,misc]
        def prepare(self) -> Any:
            # Flower's own check (basic auth or the OAuth cookie), for any handler: it raises
            # 401 on missing or wrong basic credentials.
            if not BaseHandler.get_current_user(self):
                if self.request.method in ("GET", "HEAD") and self.application.options.auth:
                    self.redirect(self.get_login_url())
                    return None
                raise tornado.web.HTTPError(401)
            return super().prepare()

    Guarded.__name__ = Guarded.__qualname__ = cls.__name__
    setattr(Guarded, _GUARDED, True)
    return Guarded


def close() -> None:
    """Put every Flower handler but those in OPEN behind Flower's credentials (idempotent)."""
    # Tornado serves static_path through its own route, made from this class.
    urls.settings["static_handler_class"] = _guarded(
        urls.settings.get("static_handler_class", tornado.web.StaticFileHandler)
    )
    for i, spec in enumerate(urls.handlers):
        if isinstance(spec, URLSpec):
            spec.handler_class = _guarded(spec.handler_class)
        else:
            urls.handlers[i] = (spec[0], _guarded(spec[1]), *spec[2:])
