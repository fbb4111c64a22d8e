"""One typed, immutable settings object read from the environment.

Every name is UPPER_SNAKE and documented in README's settings table (kept in sync by a test).
A missing or invalid value raises ``SettingsError`` naming the variable; secrets never appear in
``repr`` or in :meth:`Settings.redacted`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from config.redisconn import RedisConfigError, mask_url, redis_target, with_password


class SettingsError(ValueError):
    """Raised when an environment variable is missing or cannot be parsed."""


MAX_PRESIGN_SECONDS = 7 * 86400
#: The keys of Akool's API adapters (``worker.akool.speech.APIS``, which config cannot import;
#: tests/unit/test_api_versions.py keeps the two the same).
AKOOL_APIS = ("v3", "v4")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A WEB_ALLOWED_HOSTS entry: a name or an IPv4 address, an IPv6 one (bracketed or not), an
# optional port (ignored), or * (any host)
_HOST_ENTRY = re.compile(
    r"\*|[A-Za-z0-9_.-]+(?::\d+)?|\[[0-9A-Fa-f:.]+\](?::\d+)?|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*"
)


@dataclass(frozen=True)
class StoreTarget:
    """Where results go: a local directory (``path``) or an S3 bucket and key prefix."""

    kind: Literal["local", "s3"]
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""


SECRET = {"secret": True}
# Not a secret, but it may hold one (a password in the URL): also read from ``NAME_FILE``.
FROM_FILE = {"from_file": True}


@dataclass(frozen=True, repr=False)
class Settings:
    # Akool
    akool_base_url: str = "https://openapi.akool.com"
    akool_api_key: str | None = field(default=None, repr=False, metadata=SECRET)
    akool_client_id: str | None = field(default=None, repr=False, metadata=SECRET)
    akool_client_secret: str | None = field(default=None, repr=False, metadata=SECRET)
    akool_connect_timeout: float = 3.05
    akool_read_timeout: float = 20.0
    akool_rate_limit: float = 5.0
    akool_rate_burst: float = 5.0
    akool_max_words: int = 5000
    # VoiceLab (v4) beside v3: the API of a job that does not name one, and the plan whose
    # per-request character limit v4 text is checked against (pro, max, business)
    akool_api_version: str = "v3"
    akool_plan: str = "pro"
    # Cloned voices (v4 audio.clone) remembered per sample, so a sample is cloned only once
    voice_clone_ttl_days: float = 30.0
    # Redis and Celery
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata=FROM_FILE)
    # Redis's password apart from REDIS_URL (REDIS_PASSWORD_FILE: compose's secret); it joins
    # the URL's userinfo, so every component reads it from REDIS_URL as before
    redis_password: str | None = field(default=None, repr=False, metadata=SECRET)
    # Redis Sentinel (REDIS_URL=sentinel://h1:26379;sentinel://h2:26379/0) and TLS (rediss://):
    # config/redisconn.py turns them into every component's connection options.
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_password: str | None = field(default=None, repr=False, metadata=SECRET)
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    key_prefix: str = "akool-audio"
    visibility_timeout: int = 900
    reliable_fetch: bool = True
    result_expires: int = 86400
    task_time_limit: int = 300
    # Polling
    poll_initial_delay: float = 2.0
    poll_max_delay: float = 30.0
    poll_deadline: float = 900.0
    transient_error_budget: int = 8
    # Polls that wait longer than this are parked in Redis and dispatched when due, not held
    # by a worker as countdown messages (worker/jobs/parking.py)
    poll_park_threshold: float = 4.0
    dispatch_interval: float = 0.25
    dispatch_batch: int = 1000
    # Flower's task events for audio.poll (three PUBLISHes a poll, a tenth of its CPU); the
    # job's timeline and /metrics record every poll either way
    poll_task_events: bool = False
    # A worker whose heartbeat is older than this is dead: its messages go back to their queues
    heartbeat_timeout: float = 20.0
    # Results: where they go (AUDIO_STORE; AUDIO_DIR is its older name for a local directory)
    audio_store: str | None = None
    audio_dir: Path = Path("audio")
    s3_endpoint_url: str | None = None
    aws_region: str | None = None
    s3_addressing_style: str = "auto"
    download_url_ttl: int = 86400
    storage_retry_window: float = 86400.0
    download_max_bytes: int = 200 * 1024 * 1024
    download_timeout: float = 60.0
    allow_private_hosts: tuple[str, ...] = ()
    # Notification
    notify_secret: str | None = field(default=None, repr=False, metadata=SECRET)
    notify_max_attempts: int = 6
    notify_timeout: float = 10.0
    events_channel: str = "akool-audio:events"
    # Retention
    job_retention_days: float = 30.0
    # Webhooks from Akool
    public_base_url: str | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8000
    # The web service (`akool-audio web`): the /v1 API, /metrics, /akool/webhook, the pages
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    api_tokens: tuple[str, ...] = field(default=(), repr=False, metadata=SECRET)
    api_auth: bool = True  # API_AUTH=off: no token asked (a private network only)
    # The web service's edges (worker/web/edges.py): the Host names it answers to besides
    # loopback, WEB_HOST and PUBLIC_BASE_URL's host; the proxies whose X-Forwarded-For/-Proto
    # it believes; failed token attempts per minute per client address (0: no throttle)
    web_allowed_hosts: tuple[str, ...] = ()
    web_trusted_proxies: tuple[str, ...] = ()
    auth_failure_limit: int = 10
    # State-changing requests (POST/DELETE under /v1) per token per second, and the burst
    # (worker/web/apirate.py); 0: no limit
    api_rate_limit: float = 20.0
    api_rate_burst: float = 40.0
    flower_url: str | None = None
    # Beat (RedBeat) and its schedules
    beat_max_loop_interval: float = 5.0
    beat_lock_timeout: int = 30
    sweep_interval: float = 60.0
    sweep_grace: float = 120.0
    voice_refresh_interval: float = 3600.0
    voice_cache_ttl: float = 7200.0
    purge_interval: float = 3600.0
    audio_retention_days: float = 30.0
    recurring_jobs_file: Path | None = None
    # Flower (read by Flower itself from these names)
    flower_basic_auth: str | None = field(default=None, repr=False, metadata=SECRET)
    flower_port: int = 5555
    flower_address: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.redis_password:
            try:
                url = with_password(self.redis_url, self.redis_password)
            except RedisConfigError as exc:
                raise SettingsError(str(exc)) from None
            object.__setattr__(self, "redis_url", url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.name.upper()
            from_file = f.metadata.get("secret") or f.metadata.get("from_file")
            raw = _secret_file(env, name) if from_file else None
            if raw is None:
                raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse(name, raw.strip(), f.type)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        positive = (
            "akool_connect_timeout",
            "akool_read_timeout",
            "akool_rate_limit",
            "akool_rate_burst",
            "poll_initial_delay",
            "poll_max_delay",
            "poll_deadline",
            "download_max_bytes",
            "download_timeout",
            "notify_timeout",
            "visibility_timeout",
            "result_expires",
            "task_time_limit",
            "akool_max_words",
            "webhook_port",
            "web_port",
            "beat_max_loop_interval",
            "sweep_interval",
            "sweep_grace",
            "voice_refresh_interval",
            "purge_interval",
            "audio_retention_days",
            "flower_port",
            "download_url_ttl",
            "storage_retry_window",
            "poll_park_threshold",
            "dispatch_interval",
            "dispatch_batch",
            "heartbeat_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name.upper()} must be greater than 0")
        try:
            redis_target(self)  # config/redisconn.py: the URL, Sentinel and TLS settings agree
        except RedisConfigError as exc:
            raise SettingsError(str(exc)) from None
        if not self.akool_base_url.startswith(("http://", "https://")):
            raise SettingsError("AKOOL_BASE_URL must be an http(s) URL")
        for entry in self.allow_private_hosts:
            try:
                allow_entry(entry)
            except ValueError as exc:
                raise SettingsError(
                    f"ALLOW_PRIVATE_HOSTS: each entry is host or host:port ([v6]:port), {exc}"
                ) from None
        # Every countdown must stay far below the visibility timeout: kombu redelivers an unacked
        # message (a countdown is one) after it, its restore sweep adds about 100 s, and a task
        # may run for its time limit (Celery docs, "Redis: Caveats").
        if self.poll_max_delay + self.task_time_limit + 120 > self.visibility_timeout:
            raise SettingsError(
                "VISIBILITY_TIMEOUT must exceed POLL_MAX_DELAY + TASK_TIME_LIMIT + 120 s "
                f"(now {self.visibility_timeout} <= {self.poll_max_delay} + "
                f"{self.task_time_limit} + 120)"
            )

        # The sweeper reschedules a stalled job's next step SWEEP_GRACE s ahead, and a job that
        # waits for the shared rate limit may wait up to POLL_MAX_DELAY: both are countdowns.
        if self.sweep_grace + self.task_time_limit + 120 > self.visibility_timeout:
            raise SettingsError(
                "VISIBILITY_TIMEOUT must exceed SWEEP_GRACE + TASK_TIME_LIMIT + 120 s "
                f"(now {self.visibility_timeout} <= {self.sweep_grace} + "
                f"{self.task_time_limit} + 120)"
            )
        if self.heartbeat_timeout < 3:
            raise SettingsError("HEARTBEAT_TIMEOUT must be at least 3 s (refreshed every third)")
        if self.akool_api_version not in AKOOL_APIS:
            raise SettingsError(
                f"AKOOL_API_VERSION must be {' or '.join(AKOOL_APIS)}, "
                f"got {self.akool_api_version!r}"
            )
        plan = " ".join(self.akool_plan.lower().split())
        if plan not in ("pro", "max", "business", "pro max"):
            raise SettingsError(f"AKOOL_PLAN must be pro, max or business, got {self.akool_plan!r}")
        if self.voice_clone_ttl_days <= 0:
            raise SettingsError("VOICE_CLONE_TTL_DAYS must be greater than 0")
        if self.poll_initial_delay > self.poll_max_delay:
            raise SettingsError("POLL_INITIAL_DELAY must not exceed POLL_MAX_DELAY")
        if self.transient_error_budget < 0:
            raise SettingsError("TRANSIENT_ERROR_BUDGET must be 0 or more")
        if self.notify_max_attempts < 1:
            raise SettingsError("NOTIFY_MAX_ATTEMPTS must be at least 1")
        if self.job_retention_days * 86400 < 3600:
            raise SettingsError(
                "JOB_RETENTION_DAYS must keep final records at least an hour (0.042 days)"
            )
        self.store_target()  # raises SettingsError naming AUDIO_STORE
        if self.s3_addressing_style not in ("auto", "path", "virtual"):
            raise SettingsError("S3_ADDRESSING_STYLE must be auto, path or virtual")
        if self.download_url_ttl > MAX_PRESIGN_SECONDS:
            raise SettingsError(
                f"DOWNLOAD_URL_TTL must be at most {MAX_PRESIGN_SECONDS} s (7 days): S3's "
                "signatures (SigV4) cannot be valid longer"
            )
        if self.s3_endpoint_url and not self.s3_endpoint_url.startswith(("http://", "https://")):
            raise SettingsError("S3_ENDPOINT_URL must be an http(s) URL")
        if any(len(t) < 16 for t in self.api_tokens):
            raise SettingsError("API_TOKENS: each token must be at least 16 characters")
        if self.flower_url and not self.flower_url.startswith(("http://", "https://")):
            raise SettingsError("FLOWER_URL must be an http(s) URL")
        if self.public_base_url and not self.public_base_url.startswith(("http://", "https://")):
            raise SettingsError("PUBLIC_BASE_URL must be an http(s) URL")
        self._check_web_edges()

        # RedBeat renews its lock on every tick: a lock shorter than two ticks could lapse while
        # the owner is healthy, and a second beat would then fire the same entries.
        if self.beat_lock_timeout < 2 * self.beat_max_loop_interval:
            raise SettingsError(
                "BEAT_LOCK_TIMEOUT must be at least twice BEAT_MAX_LOOP_INTERVAL "
                f"(now {self.beat_lock_timeout} < 2 x {self.beat_max_loop_interval:g})"
            )
        if 0 < self.voice_cache_ttl < self.voice_refresh_interval:
            raise SettingsError(
                "VOICE_CACHE_TTL must be 0 (no cache) or at least VOICE_REFRESH_INTERVAL"
            )

    def _check_web_edges(self) -> None:
        if self.auth_failure_limit < 0:
            raise SettingsError("AUTH_FAILURE_LIMIT must be 0 or more (0: no throttle)")
        if self.api_rate_limit < 0:
            raise SettingsError("API_RATE_LIMIT must be 0 or more (0: no limit)")
        if self.api_rate_limit > 0 and self.api_rate_burst < 1:
            raise SettingsError("API_RATE_BURST must be at least 1")
        for entry in self.web_trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise SettingsError(
                    f"WEB_TRUSTED_PROXIES: {entry!r} is not an address or a network "
                    "(10.0.0.2, 10.0.0.0/8, fd00::/8)"
                ) from None
        for entry in self.web_allowed_hosts:
            if not _HOST_ENTRY.fullmatch(entry):
                raise SettingsError(f"WEB_ALLOWED_HOSTS: {entry!r} is not a host name (or *)")

    def require_credentials(self) -> None:
        """Fail with a message naming the variables when no Akool credential is set."""
        if self.akool_api_key:
            return
        if self.akool_client_id and self.akool_client_secret:
            return
        raise SettingsError(
            "no Akool credentials: set AKOOL_API_KEY, or AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET"
        )

    def redacted(self) -> dict[str, str]:
        """Every setting as its env name and a printable value, secrets masked."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                shown = "(set, hidden)" if value else "(not set)"
            elif f.name in ("redis_url", "s3_endpoint_url") and value:
                shown = mask_url(value)
            elif isinstance(value, tuple):
                shown = ",".join(value)
            else:
                shown = "" if value is None else str(value)
            out[f.name.upper()] = shown
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({shown})"

    def key(self, *parts: str) -> str:
        return ":".join((self.key_prefix, *parts))

    def store_target(self) -> StoreTarget:
        """Where results go: ``AUDIO_STORE`` (a path, ``file:///abs/path`` or
        ``s3://BUCKET/PREFIX``), else the directory ``AUDIO_DIR``."""
        raw = self.audio_store
        if raw is None:
            return StoreTarget("local", path=self.audio_dir)
        if raw.startswith("s3://"):
            bucket, _, prefix = raw.removeprefix("s3://").partition("/")
            if not _BUCKET.fullmatch(bucket) or ".." in bucket:
                raise SettingsError(
                    f"AUDIO_STORE: {bucket!r} is not a bucket name (3-63 lowercase letters, "
                    "digits, '.' or '-')"
                )
            prefix = prefix.strip("/")
            if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
                raise SettingsError("AUDIO_STORE: the prefix must not hold empty, '.' or '..'")
            return StoreTarget("s3", bucket=bucket, prefix=prefix)
        if raw.startswith("file://"):
            path = raw.removeprefix("file://")
            if not path.startswith("/"):
                raise SettingsError(
                    "AUDIO_STORE: a file:// URL needs an absolute path (file:///...)"
                )
            return StoreTarget("local", path=Path(path))
        if "://" in raw:
            raise SettingsError(
                "AUDIO_STORE must be a path, file:///abs/path or s3://BUCKET/PREFIX"
            )
        return StoreTarget("local", path=Path(raw))


def allow_entry(entry: str) -> tuple[str, int | None]:
    """An ``ALLOW_PRIVATE_HOSTS`` entry as ``(host, port)``: ``host`` or ``[v6]`` allows every
    port of the host (port None), ``host:port`` or ``[v6]:port`` that port only. A bare IPv6
    address (``::1``) is a host. Raises ValueError for anything else."""
    text = entry.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not [address] or [address]:port")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, None
    if not host:
        raise ValueError(f"{entry!r} has no host")
    if port is None:
        return host, None
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        raise ValueError(f"{entry!r}: the port must be 1-65535")
    return host, int(port)


def _secret_file(env: Mapping[str, str], name: str) -> str | None:
    """A secret from the file ``NAME_FILE`` names (Docker and Kubernetes mount secrets as
    files); None when it is not set. Setting both ``NAME`` and ``NAME_FILE`` is an error."""
    path = env.get(f"{name}_FILE", "").strip()
    if not path:
        return None
    if env.get(name, "").strip():
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None


def _split_list(raw: str) -> tuple[str, ...]:
    """A list setting: comma- or line-separated (a file of one token a line is a list)."""
    return tuple(p.strip() for p in re.split(r"[,\r\n]", raw) if p.strip())


def _parse_bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _parse(name: str, raw: str, type_: Any) -> Any:
    parsers: dict[str, Callable[[str], Any]] = {
        "str": str,
        "str | None": str,
        "int": int,
        "float": float,
        "Path": Path,
        "Path | None": Path,
        "tuple[str, ...]": _split_list,
        "bool": _parse_bool,
    }
    parser = parsers.get(type_ if isinstance(type_, str) else getattr(type_, "__name__", ""))
    if parser is None:  # pragma: no cover - a new field type without a parser
        raise SettingsError(f"{name}: no parser for {type_}")
    try:
        return parser(raw)
    except ValueError:
        kind = type_ if isinstance(type_, str) else type_.__name__
        kind = "true or false" if kind == "bool" else f"a {kind}"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
