"""Injectable faults: rules matched per request, fired by a seeded coin or a countdown.

A request is judged in three passes so rules compose predictably:

1. every ``slow`` rule that fires adds its delay (the answer is then normal);
2. the first error rule that fires (``http_500_html``, ``code``, ``drop``, ``malformed_json``)
   decides the answer, and no later error rule is consumed;
3. only when no error fired: ``status_4`` and ``url_404`` mark the job the request touches.

A rule with ``times`` fires on the next n matching requests and is then spent; a rule with
``probability`` fires on a seeded coin; with both, it fires on the coin at most n times.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

Endpoint = Literal[
    "token",
    "voices",
    "create",
    "clone",
    "detail",
    "download",
    "v4_tts",
    "v4_detail",
    "v4_clone",
    "v4_voices",
    "v4_voice_detail",
]
#: v3's endpoints, then VoiceLab's (v4): tts, resource detail, voice clone, voice list and
#: voice detail.
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)

Kind = Literal["http_500_html", "code", "slow", "drop", "malformed_json", "status_4", "url_404"]
ERROR_KINDS: tuple[Kind, ...] = ("http_500_html", "code", "drop", "malformed_json")
MARK_KINDS: tuple[Kind, ...] = ("status_4", "url_404")
KINDS: tuple[Kind, ...] = ("slow", *ERROR_KINDS, *MARK_KINDS)

# Which marks mean something where: a mark on an endpoint without a job is never consumed.
_MARKS_BY_ENDPOINT: dict[str, tuple[Kind, ...]] = {
    "create": ("status_4", "url_404"),
    "clone": ("status_4", "url_404"),
    "detail": ("status_4", "url_404"),
    "download": ("url_404",),
    "v4_tts": ("status_4", "url_404"),
    "v4_detail": ("status_4", "url_404"),
    "v4_clone": ("status_4",),  # the cloned voice ends in status 4
    "v4_voice_detail": ("status_4",),
}

_FIELDS = {"endpoint", "kind", "probability", "times", "code", "msg", "delay", "http_status"}


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One rule of ``config.faults``; see the module docstring for how rules fire."""

    endpoint: str
    kind: Kind
    probability: float | None = None
    times: int | None = None
    code: int = 1005
    msg: str | None = None
    delay: float = 0.0
    http_status: int = 500

    @classmethod
    def from_dict(cls, data: Any, index: int = 0) -> FaultRule:
        where = f"faults[{index}]"
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a JSON object, got {data!r}")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
        endpoint = data.get("endpoint", "any")
        if endpoint != "any" and endpoint not in ENDPOINTS:
            raise ValueError(
                f"{where}.endpoint must be one of any, {', '.join(ENDPOINTS)}; got {endpoint!r}"
            )
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}; got {kind!r}")
        prob = data.get("probability")
        if prob is not None and (
            isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob <= 1
        ):
            raise ValueError(f"{where}.probability must be a number in [0, 1], got {prob!r}")
        times = data.get("times")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 0
        ):
            raise ValueError(f"{where}.times must be a non-negative integer, got {times!r}")
        code = data.get("code", 1005)
        if kind == "code" and "code" not in data:
            raise ValueError(f"{where}: kind 'code' needs a \"code\" (e.g. 1005 or 1201)")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"{where}.code must be an integer, got {code!r}")
        msg = data.get("msg")
        if msg is not None and not isinstance(msg, str):
            raise ValueError(f"{where}.msg must be a string, got {msg!r}")
        delay = data.get("delay", 0.0)
        if kind == "slow" and "delay" not in data:
            raise ValueError(f"{where}: kind 'slow' needs a \"delay\" in seconds")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError(f"{where}.delay must be a non-negative number, got {delay!r}")
        status = data.get("http_status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"{where}.http_status must be an HTTP error status, got {status!r}")
        return cls(
            endpoint=endpoint,
            kind=cast(Kind, kind),
            probability=None if prob is None else float(prob),
            times=times,
            code=code,
            msg=msg,
            delay=float(delay),
            http_status=status,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": self.endpoint, "kind": self.kind}
        if self.probability is not None:
            out["probability"] = self.probability
        if self.times is not None:
            out["times"] = self.times
        if self.kind == "code":
            out["code"] = self.code
            if self.msg is not None:
                out["msg"] = self.msg
        if self.kind == "slow":
            out["delay"] = self.delay
        if self.kind == "http_500_html":
            out["http_status"] = self.http_status
        return out

    def matches(self, endpoint: str) -> bool:
        return self.endpoint in ("any", endpoint)


@dataclass(slots=True)
class Decision:
    """What the faults say about one request."""

    delay: float = 0.0
    error: FaultRule | None = None
    marks: set[str] = field(default_factory=set)
    fired: list[str] = field(default_factory=list)


class FaultInjector:
    """Holds the rules and their remaining ``times``; thread-safe."""

    def __init__(self, rules: tuple[FaultRule, ...] = (), seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules = rules
        self._left: list[int | None] = [r.times for r in rules]
        self._rng = random.Random(seed)

    def load(self, rules: tuple[FaultRule, ...], seed: int | None) -> None:
        """Replace the rules (their countdowns restart) and reseed the coin."""
        with self._lock:
            self._rules = rules
            self._left = [r.times for r in rules]
            self._rng = random.Random(seed)

    def remaining(self) -> list[int | None]:
        with self._lock:
            return list(self._left)

    def _fire(self, i: int) -> bool:
        rule, left = self._rules[i], self._left[i]
        if left is not None and left <= 0:
            return False
        if rule.probability is not None and self._rng.random() >= rule.probability:
            return False
        if left is not None:
            self._left[i] = left - 1
        return True

    def decide(self, endpoint: str) -> Decision:
        decision = Decision()
        with self._lock:
            indexed = [(i, r) for i, r in enumerate(self._rules) if r.matches(endpoint)]
            for i, rule in indexed:
                if rule.kind == "slow" and self._fire(i):
                    decision.delay += rule.delay
                    decision.fired.append(rule.kind)
            for i, rule in indexed:
                if rule.kind in ERROR_KINDS and self._fire(i):
                    decision.error = rule
                    decision.fired.append(rule.kind)
                    break
            if decision.error is None:
                usable = _MARKS_BY_ENDPOINT.get(endpoint, ())
                for i, rule in indexed:
                    if rule.kind in usable and rule.kind not in decision.marks and self._fire(i):
                        decision.marks.add(rule.kind)
                        decision.fired.append(rule.kind)
        return decision
