"""The sandbox's state: tokens, jobs and their lifecycle, stats. Pure Python behind one lock.

The HTTP layer turns requests into calls here and ``AkoolError`` into Akool's envelope. Time comes
from an injectable clock and lifecycle edges from an injectable scheduler, so this module can be
driven without sockets. Webhooks leave through the ``notify`` callback, always outside the lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox import codes, voices
from sandbox.audio import AudioSpec
from sandbox.config import Mode, SandboxConfig
from sandbox.faults import ENDPOINTS, FaultInjector
from worker.akool.validation import count_words

MAX_WORDS = 5000
FAIL_MARKER = "[[fail]]"
REQUEST_LOG_MAX = 100_000
UID = 101690
_RATE = re.compile(r"^(\d+(?:\.\d+)?)%$")

Notify = Callable[["Webhook"], None]


class AkoolError(Exception):
    """Raised when a request must be answered with a non-1000 code in Akool's envelope."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(code, msg or codes.message(code))
        self.code = code
        self.msg = msg or codes.message(code)


class SchedulerLike(Protocol):
    def call_at(self, when: float, fn: Callable[[], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    """One callback to send: the plaintext payload and where to send it."""

    job_id: str
    webhook_url: str
    status: int
    url: str
    retry_delays: tuple[float, ...]
    timeout: float

    def payload(self) -> dict[str, Any]:
        return {"_id": self.job_id, "status": self.status, "type": "audio", "url": self.url}


@dataclass(slots=True)
class Job:
    """One audio job; its status is derived from the clock (or the poll count) when asked."""

    id: str
    endpoint: str
    input_text: str
    voice_id: str | None
    voice_url: str | None
    voice_model_id: str
    rate: str
    webhook_url: str
    created_at: float
    mode: Mode
    polls_needed: int
    processing_at: float | None
    completed_at: float | None
    outcome: int
    audio: AudioSpec
    url_404: bool = False
    polls: int = 0
    notified: set[int] = field(default_factory=set)
    digest: str | None = None

    def status(self, now: float) -> int:
        if self.mode == "polls":
            if self.completed_at is not None:
                return self.outcome
            # polls k < N: the first half answer 1 (queueing), the rest 2 (processing)
            return 1 if self.polls <= (self.polls_needed - 1) // 2 else 2
        if self.completed_at is not None and now >= self.completed_at:
            return self.outcome
        if self.processing_at is not None and now >= self.processing_at:
            return 2
        return 1


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _text_field(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AkoolError(codes.PARAM_ERROR, f"{name} must be a string")
    return value


class SandboxState:
    """Everything the server remembers; every public method is thread-safe."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        api_key: str,
        client_id: str,
        client_secret: str,
        scheduler: SchedulerLike,
        notify: Notify,
        base_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key, self.client_id, self.client_secret = api_key, client_id, client_secret
        self.base_url = base_url
        self.faults = FaultInjector()
        self._scheduler, self._notify, self._clock = scheduler, notify, clock
        self._lock = threading.RLock()
        self._jwt_key = os.urandom(32)
        self._oid_prefix = os.urandom(5).hex()
        self._oid_counter = itertools.count(int.from_bytes(os.urandom(2), "big"))
        self._initial = config
        self._apply_reset(config)

    # -- configuration -------------------------------------------------------------------------

    def _apply_reset(self, config: SandboxConfig) -> None:
        self._generation = getattr(self, "_generation", 0) + 1
        self._config = SandboxConfig()
        self._jobs: dict[str, Job] = {}
        self._tokens: dict[str, float] = {}
        self._requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self._submissions = 0
        self._creates_by_text: Counter[str] = Counter()
        self._request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_MAX)
        self._webhooks = {"sent": 0, "delivered": 0, "failed_attempts": 0, "given_up": 0}
        self._faults_fired: Counter[str] = Counter()
        self._install(config)

    def _install(self, new: SandboxConfig, given: frozenset[str] | None = None) -> None:
        """Apply ``new``; ``given`` names the fields set (None: all). Setting ``faults`` re-arms
        them (``times`` restart) and setting ``seed`` reseeds, even to the same values."""
        touched = given if given is not None else frozenset({"faults", "seed", "lifecycle"})
        if new.revoke_tokens:
            self._tokens.clear()
            new = new.merged({"revoke_tokens": False})
        if touched & {"faults", "seed"}:
            self.faults.load(new.faults, new.seed)
        if touched & {"lifecycle", "seed"}:
            seed = new.lifecycle.seed if new.lifecycle.seed is not None else new.seed
            self._rng = random.Random(seed)
        self._config = new

    @property
    def config(self) -> SandboxConfig:
        with self._lock:
            return self._config

    def configure(self, fields: Mapping[str, Any]) -> SandboxConfig:
        """Merge ``fields`` into the config; raises ValueError and changes nothing if bad."""
        with self._lock:
            self._install(self._config.merged(fields), frozenset(fields))
            return self._config

    def reset(self) -> None:
        """Forget jobs, tokens, stats and faults; go back to the config the server started with."""
        with self._lock:
            self._apply_reset(self._initial)

    # -- auth ----------------------------------------------------------------------------------

    def issue_token(self, body: Any) -> str:
        if not isinstance(body, Mapping):
            raise AkoolError(codes.PARAM_ERROR, "request body must be a JSON object")
        cid, secret = body.get("clientId"), body.get("clientSecret")
        if not cid or not secret:
            raise AkoolError(codes.EMPTY_TOKEN, "clientId and clientSecret cannot be empty")
        if not (
            isinstance(cid, str)
            and isinstance(secret, str)
            and hmac.compare_digest(cid.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        ):
            raise AkoolError(codes.INVALID_TOKEN)
        with self._lock:
            iat = int(self._clock())
            exp = iat + max(1, int(self._config.token_ttl_seconds))
            claims = {
                "id": "64db241f6d9e5c4bd136c187",
                "type": 1,
                "from": 2,
                "email": "sandbox@example.invalid",
                "firstName": "Sandbox",
                "uid": UID,
                "code": secrets_code(self._jwt_key),
                "iat": iat,
                "exp": exp,
                "jti": os.urandom(8).hex(),
            }
            head = _b64url(
                json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode()
            )
            body_part = _b64url(json.dumps(claims, separators=(",", ":")).encode())
            signing = f"{head}.{body_part}".encode()
            sig = _b64url(hmac.new(self._jwt_key, signing, hashlib.sha256).digest())
            token = f"{head}.{body_part}.{sig}"
            self._tokens[token] = self._clock() + self._config.token_ttl_seconds
            return token

    def authenticate(self, authorization: str | None, api_key: str | None) -> None:
        """Bearer wins over x-api-key when both carry a value, as Akool documents."""
        token = None
        if authorization and authorization.strip():
            scheme, _, rest = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise AkoolError(codes.INVALID_TOKEN)
            token = rest.strip() or None
        if token is not None:
            with self._lock:
                expires = self._tokens.get(token)
                if expires is None or self._clock() >= expires:
                    raise AkoolError(codes.INVALID_TOKEN)
            return
        if api_key:
            if not hmac.compare_digest(api_key.encode(), self.api_key.encode()):
                raise AkoolError(codes.INVALID_TOKEN)
            return
        raise AkoolError(codes.EMPTY_TOKEN)

    # -- jobs ----------------------------------------------------------------------------------

    def _new_id(self) -> str:
        counter = next(self._oid_counter) & 0xFFFFFF
        return f"{int(self._clock()) & 0xFFFFFFFF:08x}{self._oid_prefix}{counter:06x}"

    def _validate(self, endpoint: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise AkoolError(codes.PARAM_ERROR, "request body must be a JSON object")
        text = _text_field(body, "input_text")
        if text is None or not text.strip():
            raise AkoolError(codes.PARAM_ERROR, "input_text cannot be empty")
        if count_words(text) > MAX_WORDS:
            raise AkoolError(codes.PARAM_ERROR, f"input_text is limited to {MAX_WORDS} words")
        rate = _text_field(body, "rate")
        if rate is None and endpoint == "clone":
            raise AkoolError(codes.PARAM_ERROR, "rate cannot be empty")
        rate = "100%" if rate is None else rate
        match = _RATE.match(rate)
        if match is None or not 0 <= float(match.group(1)) <= 100:
            raise AkoolError(
                codes.PARAM_ERROR, f'rate must be a percentage from "0%" to "100%", got {rate!r}'
            )
        voice_id = _text_field(body, "voice_id") or None
        voice_url = (_text_field(body, "voice_url") or None) if endpoint == "clone" else None
        if endpoint == "create" and voice_id is None:
            raise AkoolError(codes.PARAM_ERROR, "voice_id cannot be empty")
        if endpoint == "clone" and voice_id is None and voice_url is None:
            raise AkoolError(codes.PARAM_ERROR, "voice_id and voice_url must provide one")
        voice = voices.find(voice_id) if voice_id is not None else None
        if voice_id is not None and voice is None:
            raise AkoolError(codes.PARAM_ERROR, f"voice_id {voice_id!r} does not exist")
        if voice_url is not None and not voice_url.startswith(("http://", "https://")):
            raise AkoolError(codes.PARAM_ERROR, "voice_url must be an http(s) URL")
        hook = _text_field(body, "webhookUrl") or ""
        if hook and not hook.startswith(("http://", "https://")):
            raise AkoolError(codes.PARAM_ERROR, "webhookUrl must be an http(s) URL")
        return {
            "input_text": text,
            "rate": rate,
            "voice_id": voice_id,
            "voice_url": voice_url,
            "webhook_url": hook,
            # a clone from a sample gets a fresh voice document, as if Akool had cloned it
            "voice_model_id": voice["_id"] if voice is not None else os.urandom(12).hex(),
        }

    def create_job(self, endpoint: str, body: Any, marks: set[str]) -> dict[str, Any]:
        """Validate and create one job (no dedupe: Akool has no idempotency key)."""
        fields = self._validate(endpoint, body)
        emit: list[Webhook] = []
        with self._lock:
            now, cfg, lc = self._clock(), self._config, self._config.lifecycle
            text = fields["input_text"]
            processing_at: float | None
            completed_at: float | None
            if lc.mode == "immediate":
                processing_at = completed_at = now
            elif lc.mode == "polls":
                processing_at = completed_at = None
            else:
                total = lc.base_seconds + lc.per_word_seconds * count_words(text)
                if lc.lognormal_sigma:
                    total *= self._rng.lognormvariate(0.0, lc.lognormal_sigma)
                elif lc.jitter:
                    total *= 1 + self._rng.uniform(-lc.jitter, lc.jitter)
                processing_at, completed_at = now + 0.1 * total, now + total
            job_id = self._new_id()
            failed = FAIL_MARKER in text or "status_4" in marks
            job = Job(
                id=job_id,
                endpoint=endpoint,
                created_at=now,
                mode=lc.mode,
                polls_needed=lc.polls,
                processing_at=processing_at,
                completed_at=completed_at,
                outcome=4 if failed else 3,
                url_404="url_404" in marks,
                audio=AudioSpec.for_text(job_id, text, cfg.audio_bytes),
                **fields,
            )
            self._jobs[job_id] = job
            self._submissions += 1
            self._creates_by_text[text] += 1
            if job.webhook_url and processing_at is not None and completed_at is not None:
                gen = self._generation
                for when in sorted({processing_at, completed_at}):
                    self._scheduler.call_at(when, lambda: self._tick(job_id, gen))
            emit = self._transitions(job, now)
            record = self._record(job, job.status(now))
        self._send(emit)
        return record

    def detail(self, job_id: str | None, marks: set[str]) -> dict[str, Any]:
        """One ``infobymodelid`` call: counts as a poll and may advance the job."""
        if not job_id:
            raise AkoolError(codes.PARAM_ERROR, "audio_model_id cannot be empty")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                # Assumption: Akool's code for an unknown id is undocumented; 1008 is likeliest.
                raise AkoolError(codes.CONTENT_NOT_EXIST)
            now = self._clock()
            if "url_404" in marks:
                job.url_404 = True
            if "status_4" in marks and job.status(now) not in (3, 4):
                job.outcome = 4
            job.polls += 1
            if job.mode == "polls" and job.completed_at is None and job.polls >= job.polls_needed:
                job.completed_at = now
                if job.processing_at is None:
                    job.processing_at = now
            if job.mode == "polls" and job.processing_at is None and job.status(now) == 2:
                job.processing_at = now
            emit = self._transitions(job, now)
            record = self._record(job, job.status(now))
        self._send(emit)
        return record

    def _tick(self, job_id: str, generation: int) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if generation != self._generation or job is None:
                return
            emit = self._transitions(job, self._clock())
        self._send(emit)

    def _transitions(self, job: Job, now: float) -> list[Webhook]:
        """Callbacks owed for edges crossed so far: 2, then 3 or 4; each is sent once."""
        if not job.webhook_url:
            return []
        status, owed = job.status(now), []
        if status >= 2 and 2 not in job.notified:
            owed.append(2)
        if status in (3, 4) and status not in job.notified:
            owed.append(status)
        job.notified.update(owed)
        cfg = self._config
        return [
            Webhook(
                job.id,
                job.webhook_url,
                s,
                self._file_url(job) if s == 3 else "",
                cfg.webhook_retry_delays,
                cfg.webhook_timeout,
            )
            for s in owed
        ]

    def _send(self, hooks: list[Webhook]) -> None:
        for hook in hooks:
            self._notify(hook)

    def _file_url(self, job: Job) -> str:
        return f"{self.base_url}/files/{job.id}.wav"

    def _record(self, job: Job, status: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "_id": job.id,
            "create_time": int(job.created_at * 1000),
            "uid": UID,
            "from": 3,
            "input_text": job.input_text,
            "rate": job.rate,
            "voice_model_id": job.voice_model_id,
        }
        if status == 3:
            rec["url"] = self._file_url(job)
        rec["status"] = status
        rec["__v"] = 0
        return rec

    def file(self, job_id: str) -> AudioSpec | None:
        """The audio a ``/files`` URL serves, or None for 404 (unknown, unfinished, faulted)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.url_404 or job.status(self._clock()) != 3:
                return None
            return job.audio

    # -- admin ---------------------------------------------------------------------------------

    def _view(self, job: Job) -> dict[str, Any]:
        status = job.status(self._clock())
        done = status == 3
        if done and job.digest is None:
            job.digest = job.audio.digest()
        return {
            "_id": job.id,
            "status": status,
            "input_text": job.input_text,
            "voice_id": job.voice_id,
            "voice_url": job.voice_url,
            "rate": job.rate,
            "webhookUrl": job.webhook_url,
            "url": self._file_url(job) if done else None,
            "sha256": job.digest if done else None,
            "bytes": job.audio.size if done else None,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
            "polls": job.polls,
            "endpoint": job.endpoint,
            "url_404": job.url_404,
        }

    def job_view(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            return self._view(job)

    def jobs_view(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(j) for j in self._jobs.values()]

    def record_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._request_log.append({"t": self._clock(), "endpoint": endpoint, "status": status})

    def count_request(self, endpoint: str) -> None:
        with self._lock:
            self._requests[endpoint] += 1

    def record_faults(self, kinds: list[str]) -> None:
        if kinds:
            with self._lock:
                self._faults_fired.update(kinds)

    def record_webhook(self, event: str) -> None:
        with self._lock:
            self._webhooks[event] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "submissions": self._submissions,
                "creates_by_text": dict(self._creates_by_text),
                "request_log": list(self._request_log),
                "webhooks": dict(self._webhooks),
                "faults_fired": dict(self._faults_fired),
            }

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation


def secrets_code(key: bytes) -> str:
    """A stable, meaningless ``code`` claim, so tokens look like Akool's."""
    return hashlib.sha256(key).hexdigest()[:8]
