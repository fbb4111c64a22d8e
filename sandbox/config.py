"""The sandbox's settings: one validated, immutable value, merged from dicts.

``SandboxConfig.merged(fields)`` is what ``POST /_sandbox/config`` and ``sb.configure(**fields)``
both call, so the two paths accept and reject exactly the same input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sandbox.faults import FaultRule
from sandbox.plans import plan_named

Mode = Literal["immediate", "polls", "duration"]
MODES: tuple[Mode, ...] = ("immediate", "polls", "duration")
#: Where a v4 webhook puts the audio URL (A7: undocumented): ``preview``, ``url`` or both.
AudioField = Literal["preview", "url", "both"]
AUDIO_FIELDS: tuple[AudioField, ...] = ("preview", "url", "both")


def _number(name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _optional_seed(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer or null, got {value!r}")
    return value


def _reject_unknown(where: str, given: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(
            f"unknown {where} field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """How a job moves from queueing (1) through processing (2) to done (3) or failed (4)."""

    mode: Mode = "duration"
    polls: int = 3
    base_seconds: float = 0.5
    per_word_seconds: float = 0.01
    jitter: float = 0.2
    lognormal_sigma: float | None = None
    seed: int | None = None

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], base: LifecycleConfig | None = None
    ) -> LifecycleConfig:
        if not isinstance(data, Mapping):
            raise ValueError(f"lifecycle must be a JSON object, got {data!r}")
        _reject_unknown("lifecycle", data, {f.name for f in dataclasses.fields(cls)})
        merged = {**dataclasses.asdict(base or cls()), **data}
        mode = merged["mode"]
        if mode not in MODES:
            raise ValueError(f"lifecycle.mode must be one of {', '.join(MODES)}, got {mode!r}")
        sigma = merged["lognormal_sigma"]
        jitter = _number("lifecycle.jitter", merged["jitter"])
        if jitter >= 1:
            raise ValueError(f"lifecycle.jitter is a fraction below 1, got {jitter!r}")
        return cls(
            mode=cast(Mode, mode),
            polls=_integer("lifecycle.polls", merged["polls"], minimum=1),
            base_seconds=_number("lifecycle.base_seconds", merged["base_seconds"]),
            per_word_seconds=_number("lifecycle.per_word_seconds", merged["per_word_seconds"]),
            jitter=jitter,
            lognormal_sigma=None if sigma is None else _number("lifecycle.lognormal_sigma", sigma),
            seed=_optional_seed("lifecycle.seed", merged["seed"]),
        )


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything a test can change at run time (``POST /_sandbox/config`` takes the same keys).

    ``revoke_tokens`` is an action, not a state: setting it to true invalidates every token issued
    so far, and the stored value goes back to false so that new tokens work.
    """

    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    faults: tuple[FaultRule, ...] = ()
    webhook_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    webhook_timeout: float = 5.0
    audio_bytes: int | None = None
    seed: int | None = None
    revoke_tokens: bool = False
    token_ttl_seconds: float = 365 * 24 * 3600.0
    # VoiceLab (v4)
    plan: str = "pro"
    v4_webhook_audio_field: AudioField = "preview"
    v4_detail_wrapped: bool = True  # resource detail at data.result (docs); false: at data (A5)

    def merged(self, fields: Mapping[str, Any]) -> SandboxConfig:
        """A new config with ``fields`` applied; ``lifecycle`` merges key by key."""
        if not isinstance(fields, Mapping):
            raise ValueError("config must be a JSON object")
        _reject_unknown("config", fields, {f.name for f in dataclasses.fields(self)})
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "lifecycle":
                if isinstance(value, LifecycleConfig):
                    changes[name] = value
                else:
                    changes[name] = LifecycleConfig.from_dict(value, self.lifecycle)
            elif name == "faults":
                if not isinstance(value, list | tuple):
                    raise ValueError(f"faults must be a list of rules, got {value!r}")
                changes[name] = tuple(
                    r if isinstance(r, FaultRule) else FaultRule.from_dict(r, i)
                    for i, r in enumerate(value)
                )
            elif name == "webhook_retry_delays":
                if not isinstance(value, list | tuple):
                    raise ValueError(f"webhook_retry_delays must be a list, got {value!r}")
                changes[name] = tuple(
                    _number(f"webhook_retry_delays[{i}]", d) for i, d in enumerate(value)
                )
            elif name == "webhook_timeout":
                changes[name] = _number(name, value, minimum=0.001)
            elif name == "audio_bytes":
                changes[name] = None if value is None else _integer(name, value, minimum=46)
            elif name == "seed":
                changes[name] = _optional_seed(name, value)
            elif name == "revoke_tokens":
                if not isinstance(value, bool):
                    raise ValueError(f"revoke_tokens must be true or false, got {value!r}")
                changes[name] = value
            elif name == "token_ttl_seconds":
                changes[name] = _number(name, value, minimum=0.001)
            elif name == "plan":
                changes[name] = plan_named(value).name
            elif name == "v4_webhook_audio_field":
                if value not in AUDIO_FIELDS:
                    raise ValueError(
                        f"v4_webhook_audio_field must be one of {', '.join(AUDIO_FIELDS)}, "
                        f"got {value!r}"
                    )
                changes[name] = value
            elif name == "v4_detail_wrapped":
                if not isinstance(value, bool):
                    raise ValueError(f"v4_detail_wrapped must be true or false, got {value!r}")
                changes[name] = value
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> SandboxConfig:
        return cls().merged(fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lifecycle": dataclasses.asdict(self.lifecycle),
            "faults": [r.to_dict() for r in self.faults],
            "webhook_retry_delays": list(self.webhook_retry_delays),
            "webhook_timeout": self.webhook_timeout,
            "audio_bytes": self.audio_bytes,
            "seed": self.seed,
            "revoke_tokens": self.revoke_tokens,
            "token_ttl_seconds": self.token_ttl_seconds,
            "plan": self.plan,
            "v4_webhook_audio_field": self.v4_webhook_audio_field,
            "v4_detail_wrapped": self.v4_detail_wrapped,
        }
