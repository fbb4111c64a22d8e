"""``SandboxState``: everything the server remembers, behind one lock.

The store of jobs, the config, the token book and the stats live here; what each of them means
lives in its own module (``lifecycle``, ``validation``, ``tokens``, ``views``, ``stats``). The
HTTP layer turns requests into calls here and ``ErrorAnswer`` into Akool's envelope. Time comes
from an injectable clock and lifecycle edges from an injectable scheduler, so the state can be
driven without sockets. Webhooks leave through the ``notify`` callback, always outside the lock.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sandbox import codes
from sandbox.audio import AudioSpec
from sandbox.config import SandboxConfig
from sandbox.errors import ErrorAnswer
from sandbox.faults import FaultInjector
from sandbox.lifecycle import Job, Webhook
from sandbox.stats import Stats
from sandbox.tokens import TokenBook
from sandbox.validation import parse_job_request
from sandbox.views import admin_view, akool_record, file_url

Notify = Callable[[Webhook], None]


class SchedulerLike(Protocol):
    def call_at(self, when: float, fn: Callable[[], None]) -> None: ...


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
        self.base_url = base_url
        self.faults = FaultInjector()
        self._scheduler, self._notify, self._clock = scheduler, notify, clock
        self._lock = threading.RLock()
        self._tokens = TokenBook(
            api_key=api_key, client_id=client_id, client_secret=client_secret, clock=clock
        )
        self._oid_prefix = os.urandom(5).hex()
        self._oid_counter = itertools.count(int.from_bytes(os.urandom(2), "big"))
        self._initial = config
        self._generation = 0
        self._apply_reset(config)

    # -- configuration -------------------------------------------------------------------------

    def _apply_reset(self, config: SandboxConfig) -> None:
        self._generation += 1
        self._config = SandboxConfig()
        self._jobs: dict[str, Job] = {}
        self._tokens.forget()
        self._stats = Stats()
        self._install(config)

    def _install(self, new: SandboxConfig, given: frozenset[str] | None = None) -> None:
        """Apply ``new``; ``given`` names the fields set (None: all). Setting ``faults`` re-arms
        them (``times`` restart) and setting ``seed`` reseeds, even to the same values."""
        touched = given if given is not None else frozenset({"faults", "seed", "lifecycle"})
        if new.revoke_tokens:
            self._tokens.forget()
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

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    # -- auth ----------------------------------------------------------------------------------

    def issue_token(self, body: Any) -> str:
        self._tokens.verify_client(body)
        with self._lock:
            return self._tokens.mint(self._config.token_ttl_seconds)

    def authenticate(self, authorization: str | None, api_key: str | None) -> None:
        """Bearer wins over x-api-key when both carry a value, as Akool documents."""
        with self._lock:
            self._tokens.check(authorization, api_key)

    # -- jobs ----------------------------------------------------------------------------------

    def _new_id(self) -> str:
        counter = next(self._oid_counter) & 0xFFFFFF
        return f"{int(self._clock()) & 0xFFFFFFFF:08x}{self._oid_prefix}{counter:06x}"

    def create_job(self, endpoint: str, body: Any, marks: set[str]) -> dict[str, Any]:
        """Validate and create one job (no dedupe: Akool has no idempotency key)."""
        request = parse_job_request(endpoint, body)
        with self._lock:
            now, cfg = self._clock(), self._config
            job = Job.start(
                self._new_id(),
                endpoint,
                request,
                lifecycle=cfg.lifecycle,
                now=now,
                rng=self._rng,
                marks=marks,
                audio_bytes=cfg.audio_bytes,
            )
            self._jobs[job.id] = job
            self._stats.submitted(job.input_text)
            gen, job_id = self._generation, job.id
            for when in job.edges():
                self._scheduler.call_at(when, lambda: self._tick(job_id, gen))
            emit = self._webhooks_due(job, now)
            record = akool_record(job, job.status(now), self.base_url)
        self._send(emit)
        return record

    def detail(self, job_id: str | None, marks: set[str]) -> dict[str, Any]:
        """One ``infobymodelid`` call: counts as a poll and may advance the job."""
        if not job_id:
            raise ErrorAnswer(codes.PARAM_ERROR, "audio_model_id cannot be empty")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                # Assumption: Akool's code for an unknown id is undocumented; 1008 is likeliest.
                raise ErrorAnswer(codes.CONTENT_NOT_EXIST)
            now = self._clock()
            job.poll(now, marks)
            emit = self._webhooks_due(job, now)
            record = akool_record(job, job.status(now), self.base_url)
        self._send(emit)
        return record

    def file(self, job_id: str) -> AudioSpec | None:
        """The audio a ``/files`` URL serves, or None for 404 (unknown, unfinished, faulted)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.url_404 or job.status(self._clock()) != 3:
                return None
            return job.audio

    def _tick(self, job_id: str, generation: int) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if generation != self._generation or job is None:
                return
            emit = self._webhooks_due(job, self._clock())
        self._send(emit)

    def _webhooks_due(self, job: Job, now: float) -> list[Webhook]:
        cfg = self._config
        url = file_url(self.base_url, job.id)
        return job.webhooks_due(now, url, cfg.webhook_retry_delays, cfg.webhook_timeout)

    def _send(self, hooks: list[Webhook]) -> None:
        for hook in hooks:
            self._notify(hook)

    # -- admin and stats -----------------------------------------------------------------------

    def job_view(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            return admin_view(job, self._clock(), self.base_url)

    def jobs_view(self) -> list[dict[str, Any]]:
        with self._lock:
            return [admin_view(j, self._clock(), self.base_url) for j in self._jobs.values()]

    def count_request(self, endpoint: str) -> None:
        with self._lock:
            self._stats.requests[endpoint] += 1

    def record_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._stats.log_request(self._clock(), endpoint, status)

    def record_faults(self, kinds: list[str]) -> None:
        if kinds:
            with self._lock:
                self._stats.faults_fired.update(kinds)

    def record_webhook(self, event: str) -> None:
        with self._lock:
            self._stats.webhooks[event] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.snapshot()
