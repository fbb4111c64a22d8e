"""What ``/_sandbox/stats`` counts: requests per endpoint, submissions, the request log,
webhook outcomes and faults fired. Plain data: ``SandboxState`` updates it under its lock."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.faults import ENDPOINTS

REQUEST_LOG_MAX = 100_000
WEBHOOK_EVENTS = ("sent", "delivered", "failed_attempts", "given_up")


@dataclass(slots=True)
class Stats:
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    submissions: int = 0
    creates_by_text: Counter[str] = field(default_factory=Counter)
    request_log: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_MAX)
    )
    webhooks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WEBHOOK_EVENTS, 0))
    faults_fired: Counter[str] = field(default_factory=Counter)
    credits: float = 0.0  # v4 deduction_credit charged, summed
    clones: int = 0  # v4 voices cloned
    clones_by_source: Counter[str] = field(default_factory=Counter)

    def log_request(self, t: float, endpoint: str, status: int) -> None:
        """``status``: the envelope code, or the HTTP status, or 0 for a dropped connection."""
        self.request_log.append({"t": t, "endpoint": endpoint, "status": status})

    def submitted(self, text: str, credits: float = 0.0) -> None:
        """A job was created by create or clone (v3) or tts (v4, charged ``credits``)."""
        self.submissions += 1
        self.creates_by_text[text] += 1
        self.credits = round(self.credits + credits, 4)

    def cloned(self, source: str) -> None:
        """A v4 voice clone was started from ``source``."""
        self.clones += 1
        self.clones_by_source[source] += 1

    def snapshot(self) -> dict[str, Any]:
        """A copy, as ``/_sandbox/stats`` answers it."""
        return {
            "requests": dict(self.requests),
            "submissions": self.submissions,
            "creates_by_text": dict(self.creates_by_text),
            "request_log": list(self.request_log),
            "webhooks": dict(self.webhooks),
            "faults_fired": dict(self.faults_fired),
            "credits": self.credits,
            "clones": self.clones,
            "clones_by_source": dict(self.clones_by_source),
        }
