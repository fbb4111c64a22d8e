"""VoiceLab (v4) plans: the per-request character limit, the TTS price and the clone quota.

Akool's "Rates" table (``../shared/akool-v4.md``, "Rates and limits"). Billing is pro rata, with
no rounding up to 1000 characters: the one example that reconciles is 117 characters x 4.4 /
1000 = 0.5148 credits (Pro), characters counted as Unicode code points. The rates table says
"Max" and the TTS table says "Pro Max" (A11): both names are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    max_chars: int  # per TTS request
    credits_per_1000: float  # TTS credits per 1000 characters
    clone_voices: int  # cloned voices an account may hold


PLANS: dict[str, Plan] = {
    "pro": Plan("pro", 5_000, 4.4, 30),
    "max": Plan("max", 10_000, 3.2, 180),
    "business": Plan("business", 50_000, 2.4, 500),
}
_ALIASES = {"pro max": "max", "pro_max": "max", "promax": "max", "pro-max": "max"}


def plan_named(name: str) -> Plan:
    """The plan for ``name`` (any case; "Pro Max" is "max"); ValueError for another name."""
    key = " ".join(name.strip().lower().split()) if isinstance(name, str) else ""
    key = _ALIASES.get(key, key)
    if key not in PLANS:
        raise ValueError(f"plan must be one of {', '.join(PLANS)} (or 'pro max'), got {name!r}")
    return PLANS[key]


def characters(text: str) -> int:
    """What the character limit and the price count: Unicode code points, not UTF-8 bytes."""
    return len(text)


def tts_credits(text: str, plan: Plan) -> float:
    """``deduction_credit`` of a TTS request, charged at submit (pro rata, 4 decimals)."""
    return round(characters(text) * plan.credits_per_1000 / 1000, 4)
