"""Where Redis is and how to reach it, for every component: the broker, the result backend,
RedBeat, the job store, the rate limiter and token cache, the fleet counters and the web service.

Three families of settings say it (README, settings table):

- ``REDIS_URL``: ``redis://[user:password@]host:port/db`` (``user`` is a Redis ACL user),
  ``rediss://...`` for TLS, ``unix:///path.sock?db=0``, or a list of Sentinels,
  ``sentinel://[user:password@]h1:26379;sentinel://h2:26379;sentinel://h3:26379/0`` (the user
  and password are the Redis master's, the database is the list's, written once).
- Sentinel: ``REDIS_SENTINEL_MASTER`` (the name the Sentinels monitor, default ``mymaster``) and
  ``REDIS_SENTINEL_PASSWORD`` (the Sentinels' own ``requirepass``, when they have one).
- TLS (``rediss://``): ``REDIS_TLS_CA_FILE`` (the CA that signed the server's certificate; the
  system's CAs without it) and, for mutual TLS, ``REDIS_TLS_CERT_FILE`` with
  ``REDIS_TLS_KEY_FILE``. Certificates and host names are always verified.

:func:`redis_target` checks that they agree and :func:`connect` makes a client of the current
master. config/celeryconfig.py turns the same :class:`RedisTarget` into Celery's, kombu's and
RedBeat's options, each library spelling them its own way.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel


class Settings(Protocol):
    """The settings this module reads (config/settings.py's Settings has them)."""

    @property
    def redis_url(self) -> str: ...
    @property
    def redis_sentinel_master(self) -> str: ...
    @property
    def redis_sentinel_password(self) -> str | None: ...
    @property
    def redis_tls_ca_file(self) -> Path | None: ...
    @property
    def redis_tls_cert_file(self) -> Path | None: ...
    @property
    def redis_tls_key_file(self) -> Path | None: ...


SENTINEL_PORT = 26379
#: Seconds to reach one Sentinel and to wait for its answer. A Sentinel that is down or
#: unreachable costs at most this before the next one in the list is asked.
SENTINEL_CONNECT_TIMEOUT = 1.0
SENTINEL_SOCKET_TIMEOUT = 2.0


class RedisConfigError(ValueError):
    """Raised when the Redis settings cannot work: a malformed URL, settings that contradict
    each other, a certificate that does not verify, a user Redis refuses."""


@dataclass(frozen=True)
class RedisTarget:
    """The parsed Redis settings. ``url`` is ``REDIS_URL`` as given; for ``sentinel`` the
    Sentinels, the master's name and its credentials are taken apart."""

    url: str = field(repr=False)
    scheme: str  # redis, rediss, unix or sentinel
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = "mymaster"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    db: int = 0
    sentinel_password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    @property
    def is_sentinel(self) -> bool:
        return self.scheme == "sentinel"

    @property
    def is_tls(self) -> bool:
        return self.scheme == "rediss"

    def tls_options(self) -> dict[str, Any]:
        """redis-py's TLS options (also kombu's ``broker_use_ssl``, Celery's
        ``redis_backend_use_ssl`` and RedBeat's ``redbeat_redis_use_ssl``); empty without TLS."""
        if not self.is_tls:
            return {}
        options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if self.tls_ca_file:
            options["ssl_ca_certs"] = self.tls_ca_file
        if self.tls_cert_file:
            options["ssl_certfile"] = self.tls_cert_file
            options["ssl_keyfile"] = self.tls_key_file
        return options

    def sentinel_kwargs(self) -> dict[str, Any]:
        """How to talk to the Sentinels themselves (not to the master they name). No retry:
        redis-py retries a Sentinel that is down three times with backoff (about 4 s) before it
        asks the next one, and it asks on every new connection; the next Sentinel is the
        retry."""
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": SENTINEL_CONNECT_TIMEOUT,
            "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),
        }
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def sentinel_url(self, host: str, port: int) -> str:
        """``sentinel://[user:password@]host:port/db``: one Sentinel as kombu and Celery read
        it, with the master's credentials."""
        auth = ""
        if self.username or self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"
        return f"sentinel://{auth}{_hostport(host, port)}/{self.db}"

    def describe(self) -> str:
        """Where Redis is, for messages: no password."""
        if self.is_sentinel:
            where = ", ".join(_hostport(h, p) for h, p in self.sentinels)
            return f"master {self.master!r} of the Sentinels {where}"
        return mask_url(self.url)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redis_target(settings: Settings) -> RedisTarget:
    """The Redis settings, checked; RedisConfigError names the variable at fault."""
    url = settings.redis_url
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix", "sentinel"):
        raise RedisConfigError(
            "REDIS_URL must start with redis://, rediss://, unix:// or sentinel://"
        )
    tls = {
        "REDIS_TLS_CA_FILE": settings.redis_tls_ca_file,
        "REDIS_TLS_CERT_FILE": settings.redis_tls_cert_file,
        "REDIS_TLS_KEY_FILE": settings.redis_tls_key_file,
    }
    given = [name for name, value in tls.items() if value is not None]
    if given and scheme != "rediss":
        raise RedisConfigError(
            f"{given[0]} is set but REDIS_URL is not rediss:// (TLS): use rediss://, or unset "
            f"{given[0]}"
            + (" (TLS to Sentinel deployments is not supported)" if scheme == "sentinel" else "")
        )
    if (settings.redis_tls_cert_file is None) != (settings.redis_tls_key_file is None):
        raise RedisConfigError(
            "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (mutual TLS): set both"
        )
    for name, value in tls.items():
        if value is not None and not os.access(value, os.R_OK):
            raise RedisConfigError(f"{name}: cannot read {value}")
    if settings.redis_sentinel_password and scheme != "sentinel":
        raise RedisConfigError(
            "REDIS_SENTINEL_PASSWORD is set but REDIS_URL is not sentinel://: it is the "
            "Sentinels' password"
        )
    common: dict[str, Any] = {
        "tls_ca_file": _path(settings.redis_tls_ca_file),
        "tls_cert_file": _path(settings.redis_tls_cert_file),
        "tls_key_file": _path(settings.redis_tls_key_file),
    }
    if scheme != "sentinel":
        return RedisTarget(url=url, scheme=scheme, **common)
    return _sentinel_target(settings, url, common)


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


def _sentinel_target(settings: Settings, url: str, common: dict[str, Any]) -> RedisTarget:
    sentinels: list[tuple[str, int]] = []
    username: str | None = None
    password: str | None = None
    dbs: set[int] = set()
    for entry in (e.strip() for e in url.split(";")):
        if not entry:
            continue
        parts = urlsplit(entry)
        if parts.scheme.lower() != "sentinel" or not parts.hostname:
            raise RedisConfigError(
                f"REDIS_URL: {_shown(entry)!r} is not sentinel://host:port "
                "(Sentinels are separated by ';')"
            )
        try:
            port = parts.port or SENTINEL_PORT
        except ValueError:
            raise RedisConfigError(f"REDIS_URL: {_shown(entry)!r} has an invalid port") from None
        sentinels.append((parts.hostname, port))
        if parts.username or parts.password:
            if username is not None or password is not None:
                raise RedisConfigError(
                    "REDIS_URL: write the master's user and password once, on the first Sentinel"
                )
            username = unquote(parts.username) if parts.username else None
            password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise RedisConfigError(f"REDIS_URL: database {path!r} is not a number")
            dbs.add(int(path))
        if parts.query:
            raise RedisConfigError("REDIS_URL: a sentinel:// URL takes no query string")
    if not sentinels:
        raise RedisConfigError("REDIS_URL: sentinel:// needs at least one Sentinel")
    if len(dbs) > 1:
        raise RedisConfigError(f"REDIS_URL: the Sentinels name different databases {sorted(dbs)}")
    master = settings.redis_sentinel_master.strip()
    if not master:
        raise RedisConfigError("REDIS_SENTINEL_MASTER must not be empty")
    return RedisTarget(
        url=url,
        scheme="sentinel",
        sentinels=tuple(sentinels),
        master=master,
        username=username,
        password=password,
        db=dbs.pop() if dbs else 0,
        sentinel_password=settings.redis_sentinel_password,
        **common,
    )


def _shown(entry: str) -> str:
    """A URL for a message: the password replaced."""
    return mask_url(entry)


# A query parameter that carries a password (redis-py reads ``?password=`` like the userinfo's).
_QUERY_SECRET = re.compile(r"(&[^=&#]*pass[^=&#]*=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` (or a ``;``-separated list of them) for a message or a log: every password,
    in the userinfo or in the query string (``?password=``), replaced by ``***``."""
    return ";".join(_mask_one(entry) for entry in url.split(";"))


def _mask_one(entry: str) -> str:
    base, q, query = entry.partition("?")
    scheme, sep, rest = base.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        base = f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
    if q:
        query = _QUERY_SECRET.sub(r"\1***", "&" + query)[1:]
    return base + q + query


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in its userinfo (REDIS_PASSWORD); for a list of Sentinels, in
    the first entry, where the master's credentials are written. Raises RedisConfigError when
    the URL carries another password already."""
    first, semi, others = url.partition(";")
    parts = urlsplit(first)
    if parts.password == quote(password, safe=""):
        return url  # added before (dataclasses.replace builds the settings again)
    has_query_password = any(
        k.lower() == "password" for k, _, _ in (p.partition("=") for p in parts.query.split("&"))
    )
    if parts.password is not None or has_query_password:
        raise RedisConfigError(
            "REDIS_PASSWORD is set but REDIS_URL has a password too: write it in one place"
        )
    scheme, sep, rest = first.partition("://")
    user = f"{parts.username}" if parts.username else ""
    rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
    return f"{scheme}{sep}{user}:{quote(password, safe='')}@{rest}{semi}{others}"


def connect(target: RedisTarget, **options: Any) -> redis.Redis:
    """A client of the current master. ``options`` are redis-py's (``decode_responses``,
    timeouts, ``health_check_interval``). Behind Sentinels, each new connection asks them
    where the master is, and a connection to a master that became a replica is dropped and
    made again (redis-py's SentinelManagedConnection), so the client follows a failover."""
    if target.is_sentinel:
        sentinel = Sentinel(
            list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs(), **options
        )
        # Any, as master_for's **kwargs (connection options) are: a dict[str, str] would also
        # be checked against its connection_pool_class parameter.
        credentials: dict[str, Any] = {
            k: v for k, v in (("username", target.username), ("password", target.password)) if v
        }
        client: redis.Redis = sentinel.master_for(
            target.master, redis_class=redis.Redis, db=target.db, **credentials
        )
        return client
    return redis.Redis.from_url(target.url, **target.tls_options(), **options)


def problem(target: RedisTarget, client: redis.Redis | None = None) -> str | None:
    """Why Redis does not answer a PING now (None when it does). Raises RedisConfigError when
    no retry can help: a certificate that does not verify with ``REDIS_TLS_CA_FILE``, a server
    that does not speak TLS to ``rediss://``, a user or password Redis refuses."""
    own = client is None
    r = connect(target, socket_connect_timeout=5, socket_timeout=5) if client is None else client
    try:
        r.ping()
    except redis.AuthenticationError as exc:
        raise RedisConfigError(
            f"Redis ({target.describe()}) refused the user or password in REDIS_URL: {exc}"
        ) from None
    except redis.RedisError as exc:
        _raise_for_tls(target, exc)
        text = str(exc)
        if "NOPERM" in text or "WRONGPASS" in text or "NOAUTH" in text:
            raise RedisConfigError(
                f"Redis ({target.describe()}) refused the user in REDIS_URL: {text[:200]}"
            ) from None
        hint = ""
        if isinstance(_tls_error(exc), ssl.SSLEOFError) and not target.tls_cert_file:
            hint = (
                " (a Redis that asks for client certificates closes the connection so: set "
                "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE)"
            )
        return f"{type(exc).__name__}: {text[:300]}{hint}"
    finally:
        if own:
            r.close()
    return None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error somewhere in ``exc``'s chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _raise_for_tls(target: RedisTarget, exc: BaseException) -> None:
    tls = _tls_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        ca = target.tls_ca_file or "the system's CAs (REDIS_TLS_CA_FILE is not set)"
        raise RedisConfigError(
            f"Redis's TLS certificate ({target.describe()}) does not verify with {ca}: "
            f"{tls.verify_message or tls}. Set REDIS_TLS_CA_FILE to the CA that signed it."
        ) from None
    if tls is not None and not isinstance(tls, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        raise RedisConfigError(
            f"TLS with Redis ({target.describe()}) failed: {tls}. Does it serve TLS on this "
            "port (rediss://), and accept this client's certificate?"
        ) from None
