"""Pure checks of what we send to Akool's VoiceLab (v4), raising ``ValidationError(field, msg)``
before anything is sent: the text against the plan's character limit, ``voice_options``,
``language_code`` and ``extra_options.audio_setting`` against their documented ranges, and
which of them a voice's model supports.

Choices where Akool's docs are vague (``../shared/akool-v4.md``):

- The character limit is per plan (``AKOOL_PLAN``: pro 5 000, max 10 000, business 50 000),
  counted in Unicode code points; "Pro Max" is "max" (A11).
- Unknown keys inside ``voice_options`` and ``extra_options`` are refused (a typo such as
  ``sped`` must not be silently ignored by Akool); of ``extra_options`` only ``audio_setting``
  is supported here.
- ``language_code`` is two or three lowercase letters: the docs say ISO 639-1, yet the model
  lists hold ``fil`` and ``yue`` (A4).
- Akool does not say that an option meant for another model is rejected; we refuse it when we
  know the voice's model (the voice cache), since it would at best be ignored.
- ``rate`` does not exist in v4: it is refused with a message that names ``voice_options.speed``,
  never mapped silently (a v3 rate of "80%" is not a speed of 0.8).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from worker.akool.errors import ValidationError
from worker.akool.validation import validate_text

__all__ = [
    "PLAN_CHARS",
    "plan_name",
    "rate_refused",
    "unsupported_options",
    "validate_clone_model",
    "validate_clone_options",
    "validate_extra_options",
    "validate_language_code",
    "validate_v4_text",
    "validate_voice_options",
]

#: The longest ``input_text`` of one TTS request on each plan (characters).
PLAN_CHARS: dict[str, int] = {"pro": 5_000, "max": 10_000, "business": 50_000}
_PLAN_ALIASES = {"pro max": "max", "pro_max": "max", "promax": "max", "pro-max": "max"}

EMOTIONS = ("happy", "sad", "angry", "fearful", "disgusted", "surprised", "neutral")
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100)
BITRATES = (32000, 64000, 128000, 256000)
FORMATS = ("mp3", "wav")
CHANNELS = (1, 2)
VOICE_OPTIONS = (
    "speed",
    "stability",
    "similarity_boost",
    "style",
    "speaker_boost",
    "emotion",
    "volume",
)
AUDIO_SETTING = ("format", "sample_rate", "bitrate", "channel")
#: The documented range of each number of ``voice_options`` (the OpenAPI document reads these).
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "speed": (0.7, 1.2),
    "stability": (0.0, 1.0),
    "similarity_boost": (0.0, 1.0),
    "style": (0.0, 1.0),
}
VOLUME_RANGE = (0, 100)
CLONE_PROMPT_MAX = 2000
#: The models (1-4 of "Akool Multilingual N") that support each option, from the TTS table.
MODELS_OF: dict[str, frozenset[int]] = {
    "voice_options.stability": frozenset({1}),
    "voice_options.similarity_boost": frozenset({1}),
    "voice_options.style": frozenset({1, 2}),
    "voice_options.speed": frozenset({1, 2, 3}),
    "voice_options.speaker_boost": frozenset({1}),
    "voice_options.emotion": frozenset({2, 3}),
    "voice_options.volume": frozenset({2, 3}),
    "language_code": frozenset({1, 3, 4}),
    **{f"extra_options.audio_setting.{k}": frozenset({3}) for k in AUDIO_SETTING},
}
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_MODEL = re.compile(r"multilingual\s*([1-9])\b", re.IGNORECASE)


def plan_name(value: str) -> str:
    """The canonical plan name (pro, max, business) or ValueError."""
    key = " ".join(value.strip().lower().split())
    key = _PLAN_ALIASES.get(key, key)
    if key not in PLAN_CHARS:
        raise ValueError(f"must be pro, max or business, got {value!r}")
    return key


def validate_v4_text(text: Any, plan: str = "pro") -> str:
    """``input_text`` within the plan's character limit (no word limit in v4)."""
    limit = PLAN_CHARS[plan]
    try:
        return validate_text(text, max_words=limit + 1, max_chars=limit)
    except ValidationError as exc:
        if isinstance(text, str) and len(text) > limit:
            raise ValidationError(
                "input_text",
                f"must be at most {limit} characters on Akool's {plan} plan (AKOOL_PLAN), "
                f"got {len(text)}",
            ) from None
        raise exc from None


def _number(field: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        shown = f"{value!r:.40}"
        raise ValidationError(field, f"must be a number from {low:g} to {high:g}, got {shown}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be from {low:g} to {high:g}, got {value!r}")
    return value


def _one_of(field: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if isinstance(value, bool) or value not in allowed:
        shown = ", ".join(map(str, allowed))
        raise ValidationError(field, f"must be one of {shown}, got {value!r:.40}")
    return value


def _mapping(field: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be an object, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValidationError(
            f"{field}.{unknown[0][:40]}",
            f"is not a supported option; {field} takes {', '.join(known)}",
        )
    return dict(value)


def validate_voice_options(options: Any) -> dict[str, Any]:
    """``voice_options`` of a tts request, each with its documented range."""
    opts = _mapping("voice_options", options, VOICE_OPTIONS)
    for name, (low, high) in NUMBER_RANGES.items():
        if name in opts:
            _number(f"voice_options.{name}", opts[name], low, high)
    if "speaker_boost" in opts and not isinstance(opts["speaker_boost"], bool):
        shown = f"{opts['speaker_boost']!r:.40}"
        raise ValidationError("voice_options.speaker_boost", f"must be true or false, got {shown}")
    if "emotion" in opts:
        _one_of("voice_options.emotion", opts["emotion"], EMOTIONS)
    if "volume" in opts:
        volume = opts["volume"]
        low, high = VOLUME_RANGE
        # 50.0 is the integer 50 in JSON (and JSON Schema): sent to Akool as 50.
        if isinstance(volume, float) and volume.is_integer():
            volume = int(volume)
        if isinstance(volume, bool) or not isinstance(volume, int) or not low <= volume <= high:
            raise ValidationError(
                "voice_options.volume",
                f"must be an integer from {low} to {high}, got {opts['volume']!r:.40}",
            )
        opts["volume"] = volume
    return opts


def validate_language_code(code: Any) -> str:
    """An ISO 639 code in lowercase, two letters or three (``fil``, ``yue``: A4)."""
    if not isinstance(code, str) or not _LANGUAGE.fullmatch(code):
        raise ValidationError(
            "language_code", f"must be an ISO 639 code such as zh, pt or yue, got {code!r:.40}"
        )
    return code


def validate_extra_options(extra: Any) -> dict[str, Any]:
    """``extra_options``: its ``audio_setting`` (format, sample_rate, bitrate, channel)."""
    opts = _mapping("extra_options", extra, ("audio_setting",))
    if "audio_setting" in opts:
        where = "extra_options.audio_setting"
        setting = _mapping(where, opts["audio_setting"], AUDIO_SETTING)
        for key, allowed in (
            ("format", FORMATS),
            ("sample_rate", SAMPLE_RATES),
            ("bitrate", BITRATES),
            ("channel", CHANNELS),
        ):
            if key in setting:
                _one_of(f"{where}.{key}", setting[key], allowed)
    return opts


CLONE_OPTIONS = (
    "style",
    "gender",
    "age",
    "scenario",
    "remove_background_noise",
    "language",
    "clone_prompt",
    "need_volume_normalization",
)
CLONE_MODELS = ("Akool Multilingual 1", "Akool Multilingual 3", "Akool Multilingual 4")


def validate_clone_options(options: Any) -> dict[str, Any]:
    """``voice_options`` of a clone request: tags (lists of strings; a lone string is made a
    list, A13), two switches, the source's language and ``clone_prompt``."""
    opts = _mapping("voice_options", options, CLONE_OPTIONS)
    for tag in ("style", "gender", "age", "scenario"):
        if tag in opts:
            value = [opts[tag]] if isinstance(opts[tag], str) else opts[tag]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(f"voice_options.{tag}", "must be a list of strings")
            opts[tag] = value
    for flag in ("remove_background_noise", "need_volume_normalization"):
        if flag in opts and not isinstance(opts[flag], bool):
            raise ValidationError(f"voice_options.{flag}", "must be true or false")
    if "language" in opts:
        try:
            validate_language_code(opts["language"])
        except ValidationError as exc:
            raise ValidationError("voice_options.language", exc.args[1]) from None
    if "clone_prompt" in opts and (
        not isinstance(opts["clone_prompt"], str) or len(opts["clone_prompt"]) > CLONE_PROMPT_MAX
    ):
        raise ValidationError(
            "voice_options.clone_prompt", f"must be a string of {CLONE_PROMPT_MAX} at most"
        )
    return opts


def validate_clone_model(name: Any) -> str:
    """A model that can clone: Akool Multilingual 1, 3 or 4 (2 cannot)."""
    if model_number(name if isinstance(name, str) else None) == 2:
        raise ValidationError("voice_model_name", "Akool Multilingual 2 cannot clone voices")
    if name not in CLONE_MODELS:
        raise ValidationError(
            "voice_model_name", f"must be one of {', '.join(CLONE_MODELS)}, got {name!r:.60}"
        )
    return str(name)


def model_number(model_name: str | None) -> int | None:
    """4 for "Akool Multilingual 4"; None when the name says no model we know."""
    match = _MODEL.search(model_name or "")
    return int(match.group(1)) if match else None


def used_options(
    voice_options: Mapping[str, Any] | None,
    language_code: str | None,
    extra_options: Mapping[str, Any] | None,
) -> list[str]:
    """The dotted names of the options a request sets, as ``MODELS_OF`` names them."""
    used = [f"voice_options.{k}" for k in voice_options or {}]
    if language_code is not None:
        used.append("language_code")
    setting = (extra_options or {}).get("audio_setting") or {}
    used += [f"extra_options.audio_setting.{k}" for k in setting]
    return used


def unsupported_options(
    model_name: str | None,
    voice_options: Mapping[str, Any] | None,
    language_code: str | None,
    extra_options: Mapping[str, Any] | None,
) -> list[str]:
    """The options a voice of ``model_name`` does not support (empty when the model is
    unknown: then Akool is the judge)."""
    model = model_number(model_name)
    if model is None:
        return []
    return [
        name
        for name in used_options(voice_options, language_code, extra_options)
        if model not in MODELS_OF.get(name, frozenset({model}))
    ]


def rate_refused() -> ValidationError:
    """``rate`` given for a v4 job: refused, never mapped."""
    return ValidationError(
        "rate",
        'is an Audio API v3 option ("NN%"); VoiceLab (v4) has no rate: set '
        "voice_options.speed (0.7 to 1.2) instead",
    )
