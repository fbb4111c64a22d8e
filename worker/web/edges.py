"""What the web service checks of a request before any view or token: the ``Host`` it was sent
to (``WEB_ALLOWED_HOSTS``), the origin of a write when no token is asked (``API_AUTH=off``),
the proxies whose ``X-Forwarded-For``/``-Proto`` it believes (``WEB_TRUSTED_PROXIES``), and
``X-Content-Type-Options: nosniff`` on every answer.

The Host check stops DNS rebinding: a page of another site whose name is made to resolve to
this service's address sends its own name as ``Host``, which is not one of ours. Loopback names
are always served (a rebinding page cannot send them), and so are ``WEB_HOST`` and
``WEBHOOK_HOST`` (unless a wildcard) and ``PUBLIC_BASE_URL``'s host.

The origin check: with ``API_AUTH=off`` there is no token and no session for a browser to lack,
so a form on any site could POST here. A POST, PUT, PATCH or DELETE must then come from the
service's own pages: an ``Origin`` that is this host (and port), or, without ``Origin``,
``Sec-Fetch-Site: same-origin`` or ``none``. A request with neither header is not a browser's
(every browser sends ``Origin`` on a cross-site POST) and passes: curl and backends keep working.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, request

from config.settings import Settings
from worker.web.jsonerrors import ApiError

log = logging.getLogger("akool_audio.web")

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = ("", "0.0.0.0", "::", "[::]", "*")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")
_PORT = re.compile(r":\d{1,5}")
DEFAULT_PORTS = {"http": 80, "https": 443}
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def split_host(host: str) -> tuple[str, int | None] | None:
    """``host`` (a Host header, or an entry of WEB_ALLOWED_HOSTS) as its lowercased name (an
    IPv6 address in brackets, no trailing dot) and its port; None when it is neither."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not _PORT.fullmatch(rest)):
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
        return f"[{name}]", int(rest[1:]) if rest else None
    if host.count(":") > 1:  # a bare IPv6 address (a setting; a Host header brackets it)
        try:
            return f"[{ipaddress.IPv6Address(host)}]", None
        except ValueError:
            return None
    name, colon, port = host.partition(":")
    if colon and not _PORT.fullmatch(colon + port):
        return None
    name = name.rstrip(".")
    if not _NAME.fullmatch(name):
        return None
    return name, int(port) if port else None


def host_name(host: str) -> str | None:
    """The name of ``host`` without its port (see :func:`split_host`)."""
    found = split_host(host)
    return found[0] if found else None


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names the service answers to; None: any (``WEB_ALLOWED_HOSTS=*``)."""
    names = set(LOOPBACK)
    for bound in (settings.web_host, settings.webhook_host):
        if bound.strip() not in WILDCARDS:
            names.add(host_name(bound) or bound)
    if settings.public_base_url:
        public = urlsplit(settings.public_base_url).netloc.rpartition("@")[2]
        names.add(host_name(public) or public)
    for entry in settings.web_allowed_hosts:
        if entry.strip() == "*":
            return None
        names.add(host_name(entry) or entry)
    return frozenset(names)


def same_origin(origin: str | None, fetch_site: str | None, host: str) -> bool:
    """Whether a browser's request was made by a page of ``host`` (the Host header) itself;
    True for a request with neither ``Origin`` nor ``Sec-Fetch-Site`` (not a browser's)."""
    if origin is not None:
        return _origin_is(origin.strip(), host)
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("same-origin", "none")
    return True


def _origin_is(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc or parts.path or parts.query:
        return False  # "null" (a sandboxed frame, a file), or not an origin at all
    theirs = split_host(parts.netloc)
    ours = split_host(host)
    if theirs is None or ours is None or theirs[0] != ours[0]:
        return False
    default = DEFAULT_PORTS[parts.scheme]
    # Behind a TLS proxy the scheme we see may not be the browser's; the port tells enough.
    return (theirs[1] or default) == (ours[1] or default)


@dataclass(frozen=True)
class TrustedProxies:
    """The reverse proxies of ``WEB_TRUSTED_PROXIES``. Werkzeug's ProxyFix trusts a count of
    hops from wherever a request comes; this trusts addresses."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client_address(self, remote: str, forwarded: str) -> str:
        """The client's address: ``remote`` unless it is a trusted proxy; then the rightmost
        address of ``X-Forwarded-For`` that is not one (each proxy appends the address it was
        called from, so only the part our proxies wrote is believed)."""
        if not self.trusts(remote):
            return remote
        client = remote
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            try:
                client = str(ipaddress.ip_address(hop))
            except ValueError:
                break
            if not self.trusts(client):
                break
        return client

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """``app`` seeing the client's address as ``REMOTE_ADDR`` and the scheme the trusted
        proxy was called with as ``wsgi.url_scheme`` (the cookie's ``Secure`` flag)."""
        if not self.networks:
            return app

        def call(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            remote = str(environ.get("REMOTE_ADDR") or "")
            if self.trusts(remote):
                forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "")
                environ["REMOTE_ADDR"] = self.client_address(remote, forwarded)
                proto = str(environ.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[-1]
                if proto.strip().lower() in DEFAULT_PORTS:
                    environ["wsgi.url_scheme"] = proto.strip().lower()
            return app(environ, start_response)

        return call


def install(app: Flask, settings: Settings) -> None:
    """Check the Host of every request of ``app`` (and, with API_AUTH=off, the origin of its
    writes) before anything else runs; ``nosniff`` on every answer; believe the trusted
    proxies. Call it before any other ``before_request``."""
    allowed = allowed_hosts(settings)
    check_origin = not settings.api_auth

    def check() -> None:
        raw = request.environ.get("HTTP_HOST")
        # Without a Host header (HTTP/1.0) the request is no browser's: nothing to rebind.
        if allowed is not None and raw is not None and host_name(raw) not in allowed:
            log.warning("refused a request for a Host not in WEB_ALLOWED_HOSTS: %s", _shown(raw))
            raise ApiError(
                421,
                "this service does not answer to that Host name; its operator lists the "
                "names it answers to in WEB_ALLOWED_HOSTS",
            )
        if (
            check_origin
            and request.method in UNSAFE
            and not same_origin(
                request.headers.get("Origin"),
                request.headers.get("Sec-Fetch-Site"),
                str(raw or ""),
            )
        ):
            raise ApiError(
                403,
                "with API_AUTH=off a browser may change things only from this service's "
                "own pages (a same-origin request)",
            )

    app.before_request(check)
    app.after_request(_nosniff)
    app.wsgi_app = TrustedProxies.parse(  # type: ignore[method-assign,assignment]
        settings.web_trusted_proxies
    ).wrap(app.wsgi_app)


def _nosniff(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _shown(text: str) -> str:
    return quote(text[:200], safe="/:@!$&'()*+,;=-._~[]")
