"""One job's life: queueing (1), processing (2), then done (3) or failed (4), and the webhooks
owed at each edge.

The timeline is fixed at create by the lifecycle config: ``immediate`` (done at once), ``polls``
(the N-th detail call completes it) or ``duration`` (done at a time drawn from the config). The
status is derived from the clock or the poll count whenever it is asked, so nothing here needs a
thread; the state schedules a look at each clock-driven edge so that webhooks leave on time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sandbox.audio import AudioSpec
from sandbox.config import LifecycleConfig, Mode
from sandbox.validation import JobRequest
from worker.akool.validation import count_words

FAIL_MARKER = "[[fail]]"


@dataclass(frozen=True, slots=True)
class Webhook:
    """One callback to send: the plaintext payload and where to send it."""

    job_id: str
    webhook_url: str
    status: int
    url: str
    retry_delays: tuple[float, ...]
    timeout: float
    kind: str = "audio"
    #: Where the audio URL goes: v3 ``url``; v4 (undocumented, A7) ``preview``, ``url`` or both.
    audio_field: str = "url"
    voice_id: str | None = None  # a v4 clone's new voice (at status 3)

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_id": self.job_id, "status": self.status, "type": self.kind}
        if self.audio_field in ("url", "both"):
            out["url"] = self.url
        if self.audio_field in ("preview", "both"):
            out["preview"] = self.url or None
        if self.voice_id is not None:
            out["voice_id"] = self.voice_id
        return out


def _timeline(
    lc: LifecycleConfig, text: str, now: float, rng: random.Random
) -> tuple[float | None, float | None]:
    """``(processing_at, completed_at)``; both None in polls mode (the polls decide)."""
    if lc.mode == "immediate":
        return now, now
    if lc.mode == "polls":
        return None, None
    total = lc.base_seconds + lc.per_word_seconds * count_words(text)
    if lc.lognormal_sigma:
        total *= rng.lognormvariate(0.0, lc.lognormal_sigma)
    elif lc.jitter:
        total *= 1 + rng.uniform(-lc.jitter, lc.jitter)
    return now + 0.1 * total, now + total


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
    api: int = 3
    credits: float = 0.0  # v4's deduction_credit, charged at create
    #: v4 only: the request's options, the voice record, a clone's new voice id and so on.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        job_id: str,
        endpoint: str,
        request: JobRequest,
        *,
        lifecycle: LifecycleConfig,
        now: float,
        rng: random.Random,
        marks: set[str],
        audio_bytes: int | None,
        api: int = 3,
        audio: AudioSpec | None = None,
        credits: float = 0.0,
        extra: dict[str, Any] | None = None,
    ) -> Job:
        """A job created ``now``; a ``[[fail]]`` text or a ``status_4`` mark makes it end in 4."""
        text = request.input_text
        processing_at, completed_at = _timeline(lifecycle, text, now, rng)
        return cls(
            id=job_id,
            endpoint=endpoint,
            input_text=text,
            voice_id=request.voice_id,
            voice_url=request.voice_url,
            voice_model_id=request.voice_model_id,
            rate=request.rate,
            webhook_url=request.webhook_url,
            created_at=now,
            mode=lifecycle.mode,
            polls_needed=lifecycle.polls,
            processing_at=processing_at,
            completed_at=completed_at,
            outcome=4 if FAIL_MARKER in text or "status_4" in marks else 3,
            url_404="url_404" in marks,
            audio=audio or AudioSpec.for_text(job_id, text, audio_bytes),
            api=api,
            credits=credits,
            extra=extra or {},
        )

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

    def edges(self) -> list[float]:
        """When to look again for webhooks owed: the clock-driven transitions, if any are."""
        if not self.webhook_url or self.processing_at is None or self.completed_at is None:
            return []
        return sorted({self.processing_at, self.completed_at})

    def poll(self, now: float, marks: set[str]) -> None:
        """One detail call: apply the request's marks, count it, and advance a polls-mode job."""
        if "url_404" in marks:
            self.url_404 = True
        if "status_4" in marks and self.status(now) not in (3, 4):
            self.outcome = 4
        self.polls += 1
        if self.mode != "polls":
            return
        if self.completed_at is None and self.polls >= self.polls_needed:
            self.completed_at = now
            if self.processing_at is None:
                self.processing_at = now
        if self.processing_at is None and self.status(now) == 2:
            self.processing_at = now

    def webhooks_due(
        self,
        now: float,
        file_url: str,
        retry_delays: tuple[float, ...],
        timeout: float,
        *,
        kind: str = "audio",
        audio_field: str = "url",
        voice_id: str | None = None,
    ) -> list[Webhook]:
        """Callbacks owed for edges crossed so far: 2, then 3 or 4; each is owed once."""
        if not self.webhook_url:
            return []
        status, owed = self.status(now), []
        if status >= 2 and 2 not in self.notified:
            owed.append(2)
        if status in (3, 4) and status not in self.notified:
            owed.append(status)
        self.notified.update(owed)
        return [
            Webhook(
                self.id,
                self.webhook_url,
                s,
                file_url if s == 3 else "",
                retry_delays,
                timeout,
                kind=kind,
                audio_field=audio_field,
                voice_id=voice_id if s == 3 else None,
            )
            for s in owed
        ]
