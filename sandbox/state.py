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

from sandbox import codes, v4voices, voices
from sandbox.audio import AudioSpec
from sandbox.config import SandboxConfig
from sandbox.errors import ErrorAnswer
from sandbox.faults import FaultInjector
from sandbox.lifecycle import FAIL_MARKER, Job, Webhook
from sandbox.plans import plan_named, tts_credits
from sandbox.stats import Stats
from sandbox.tokens import TokenBook
from sandbox.v4requests import parse_clone_request, parse_tts_request
from sandbox.v4views import clone_record, preview_url, resource_record, tts_record
from sandbox.validation import JobRequest, parse_job_request
from sandbox.views import admin_view, akool_record, file_url

QUOTA = 1006  # the clone-count cap's code is undocumented (§11): the quota code is a guess
MAX_PAGE_SIZE = 100  # the largest page is undocumented (A21): larger sizes are clamped

Notify = Callable[[Webhook], None]


def _positive(params: Mapping[str, str], name: str, default: int) -> int:
    """A page or size: typed String in the docs, integer in the answer (A10)."""
    raw = params.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ErrorAnswer(codes.PARAM_ERROR, f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


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
        self._clones: dict[str, Job] = {}  # v4 cloned voices by their _id
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
            if job is None or job.api != 3:
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
            job = self._jobs.get(job_id) or self._clones.get(job_id)
            if generation != self._generation or job is None:
                return
            emit = self._webhooks_due(job, self._clock())
        self._send(emit)

    def _webhooks_due(self, job: Job, now: float) -> list[Webhook]:
        cfg = self._config
        delays, timeout = cfg.webhook_retry_delays, cfg.webhook_timeout
        if job.api == 3:
            return job.webhooks_due(now, file_url(self.base_url, job.id), delays, timeout)
        field = cfg.v4_webhook_audio_field
        if job.endpoint == "v4_clone":
            # Whether Akool calls back for clones, and with what, is undocumented (A7).
            voice_id = job.extra["new_voice_id"]
            url = preview_url(self.base_url, voice_id)
            return job.webhooks_due(
                now, url, delays, timeout, kind="voice", audio_field=field, voice_id=voice_id
            )
        url = file_url(self.base_url, job.id)
        return job.webhooks_due(now, url, delays, timeout, audio_field=field)

    def _send(self, hooks: list[Webhook]) -> None:
        for hook in hooks:
            self._notify(hook)

    # -- VoiceLab (v4) -------------------------------------------------------------------------

    def _start(self, job: Job, now: float) -> list[Webhook]:
        """Schedule a new job's clock-driven edges; the webhooks owed already."""
        gen, job_id = self._generation, job.id
        for when in job.edges():
            self._scheduler.call_at(when, lambda: self._tick(job_id, gen))
        return self._webhooks_due(job, now)

    def find_v4_voice(self, voice_id: str) -> dict[str, Any] | None:
        """A v4 voice by its ``voice_id``, or by its document ``_id`` (A1: the examples send
        one): Akool's, the account's own, and the clones that are done."""
        with self._lock:
            for voice in (*v4voices.AKOOL_VOICES, *v4voices.OWN_VOICES):
                if voice_id in (voice["voice_id"], voice["_id"]):
                    return dict(voice)
            now = self._clock()
            for clone in self._clones.values():
                new_id = clone.extra["new_voice_id"]
                if voice_id in (new_id, clone.id) and clone.status(now) == 3:
                    return clone_record(clone, 3, self.base_url, now)
        return None

    def create_tts(self, body: Any, marks: set[str]) -> dict[str, Any]:
        """``POST /api/open/v4/voice/tts``: validate, charge the credits, create the job."""
        with self._lock:
            plan = plan_named(self._config.plan)
        request = parse_tts_request(body, plan, self.find_v4_voice)
        setting = request.audio
        with self._lock:
            now, cfg = self._clock(), self._config
            job_id = self._new_id()
            if setting.format == "wav":
                audio = AudioSpec.for_text(
                    job_id,
                    request.input_text,
                    cfg.audio_bytes,
                    sample_rate=setting.sample_rate,
                    channels=setting.channel,
                )
            else:  # no MP3 encoder here: v3's WAV generator
                audio = AudioSpec.for_text(job_id, request.input_text, cfg.audio_bytes)
            credits = tts_credits(request.input_text, plan)
            job = Job.start(
                job_id,
                "v4_tts",
                JobRequest(
                    input_text=request.input_text,
                    rate="100%",
                    voice_id=request.voice["voice_id"],
                    voice_url=None,
                    webhook_url=request.webhook_url,
                    voice_model_id=request.voice["_id"],
                ),
                lifecycle=cfg.lifecycle,
                now=now,
                rng=self._rng,
                marks=marks,
                audio_bytes=cfg.audio_bytes,
                api=4,
                audio=audio,
                credits=credits,
                extra={
                    "voice": request.voice,
                    "voice_options": request.voice_options,
                    "extra_options": request.extra_options,
                    "language_code": request.language_code,
                    "pitch": request.pitch,
                    "format": setting.format,
                },
            )
            self._jobs[job.id] = job
            self._stats.submitted(job.input_text, credits)
            emit = self._start(job, now)
            record = tts_record(job, job.status(now), self.base_url)
        self._send(emit)
        return record

    def resource_detail(self, job_id: str, marks: set[str]) -> dict[str, Any]:
        """``GET .../voice/resource/detail/{_id}``: counts as a poll; the record at
        ``data.result`` (or at ``data`` with ``v4_detail_wrapped`` false)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.api != 4:
                raise ErrorAnswer(codes.CONTENT_NOT_EXIST)  # undocumented: a guess, as v3
            now = self._clock()
            job.poll(now, marks)
            emit = self._webhooks_due(job, now)
            record = resource_record(job, job.status(now), self.base_url, now)
            wrapped = self._config.v4_detail_wrapped
        self._send(emit)
        return {"result": record} if wrapped else record

    def clone_voice(self, body: Any, marks: set[str]) -> dict[str, Any]:
        """``POST /api/open/v4/voice/clone``: a new voice of the account (``type=1``), done
        when its lifecycle says; up to the plan's number of cloned voices."""
        request = parse_clone_request(body)
        with self._lock:
            now, cfg = self._clock(), self._config
            plan = plan_named(cfg.plan)
            held = len(v4voices.OWN_VOICES) + sum(
                1 for c in self._clones.values() if c.status(now) != 4
            )
            if held >= plan.clone_voices:
                raise ErrorAnswer(
                    QUOTA,
                    f"cloned voices are limited to {plan.clone_voices} on the {plan.name} plan",
                )
            voice_id = os.urandom(48).hex()[:64]
            if FAIL_MARKER in request.source_voice_file or "%5B%5Bfail%5D%5D" in (
                request.source_voice_file
            ):
                marks = {*marks, "status_4"}
            job = Job.start(
                self._new_id(),
                "v4_clone",
                JobRequest(
                    input_text=v4voices.PREVIEW_TEXT,
                    rate="100%",
                    voice_id=None,
                    voice_url=request.source_voice_file,
                    webhook_url=request.webhook_url,
                    voice_model_id="",
                ),
                lifecycle=cfg.lifecycle,
                now=now,
                rng=self._rng,
                marks=marks - {"url_404"},
                audio_bytes=None,
                api=4,
                audio=AudioSpec.for_text(voice_id, v4voices.PREVIEW_TEXT),
                extra={
                    "new_voice_id": voice_id,
                    "name": request.name,
                    "voice_model_name": request.voice_model_name,
                    "voice_options": request.voice_options,
                },
            )
            self._clones[job.id] = job
            self._stats.cloned(request.source_voice_file)
            emit = self._start(job, now)
            record = clone_record(job, job.status(now), self.base_url, now)
        self._send(emit)
        return record

    def voice_detail(self, voice_id: str, marks: set[str]) -> dict[str, Any]:
        """``GET .../voice/detail/{_id}`` (the document ``_id``): a clone's detail counts as
        a poll; Akool's voices and the account's own are answered as they are."""
        with self._lock:
            now = self._clock()
            clone = self._clones.get(voice_id)
            if clone is not None:
                clone.poll(now, marks)
                emit = self._webhooks_due(clone, now)
                record = clone_record(clone, clone.status(now), self.base_url, now)
            else:
                emit = []
                found = next(
                    (
                        v
                        for v in (*v4voices.AKOOL_VOICES, *v4voices.OWN_VOICES)
                        if v["_id"] == voice_id
                    ),
                    None,
                )
                if found is None:
                    raise ErrorAnswer(codes.CONTENT_NOT_EXIST)
                record = v4voices.absolute(found, self.base_url)
        self._send(emit)
        return record

    def voice_list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET .../voice/list``: ``type`` 1 (own) or 2 (Akool's), ``page``, ``size``,
        filters; ``{result, count, page, size}``."""
        kind = params.get("type")
        if kind not in ("1", "2"):
            raise ErrorAnswer(codes.PARAM_ERROR, f"type must be 1 or 2, got {kind!r}")
        page, size = _positive(params, "page", 1), _positive(params, "size", 10)
        size = min(size, MAX_PAGE_SIZE)
        with self._lock:
            now = self._clock()
            if kind == "2":
                pool = [v4voices.absolute(v, self.base_url) for v in v4voices.AKOOL_VOICES]
            else:
                pool = [v4voices.absolute(v, self.base_url) for v in v4voices.OWN_VOICES]
                pool += [
                    clone_record(c, c.status(now), self.base_url, now)
                    for c in self._clones.values()
                ]
        found = [v for v in pool if v4voices.matches(v, dict(params))]
        start = (page - 1) * size
        return {"result": found[start : start + size], "count": len(found), "page": page,
                "size": size}  # fmt: skip

    def preview(self, voice_id: str) -> AudioSpec | None:
        """The preview a ``/previews`` URL serves: a v3 or v4 voice's, or a finished clone's."""
        if (voice := voices.find(voice_id)) is not None:
            return AudioSpec.for_text(voice_id, " ".join([voice["name"]] * 12))
        for v in (*v4voices.AKOOL_VOICES, *v4voices.OWN_VOICES):
            if v["voice_id"] == voice_id:
                return AudioSpec.for_text(voice_id, str(v["text"]))
        with self._lock:
            now = self._clock()
            for clone in self._clones.values():
                if clone.extra["new_voice_id"] == voice_id and clone.status(now) == 3:
                    return clone.audio
        return None

    def clone_view(self, clone_id: str) -> dict[str, Any]:
        """The admin view of one clone; KeyError if unknown."""
        with self._lock:
            clone = self._clones.get(clone_id)
            if clone is None:
                raise KeyError(clone_id)
            return self._clone_admin(clone)

    def clones_view(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._clone_admin(c) for c in self._clones.values()]

    def _clone_admin(self, clone: Job) -> dict[str, Any]:
        view = admin_view(clone, self._clock(), self.base_url)
        if view["url"] is not None:
            view["url"] = preview_url(self.base_url, clone.extra["new_voice_id"])
        view["voice_model_name"] = clone.extra["voice_model_name"]
        return view

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
