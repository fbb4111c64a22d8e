"""What a VoiceLab (v4) tts or clone body must hold; every failure is 1003 with a message
saying what (Akool documents no v4 error at all: the code is a guess, as in sandbox/README.md).

Ranges are the documented ones (``../shared/akool-v4.md`` §2, §5). Options meant for another
model than the voice's are accepted and echoed: the docs list which models support each option
but never say that others are rejected. A request that fails validation creates nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox import codes
from sandbox.errors import ErrorAnswer
from sandbox.plans import Plan, characters
from sandbox.v4voices import CLONABLE, DEFAULT_CLONE_MODEL, MODELS

EMOTIONS = ("happy", "sad", "angry", "fearful", "disgusted", "surprised", "neutral")
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100)
BITRATES = (32000, 64000, 128000, 256000)
FORMATS = ("mp3", "wav")
CHANNELS = (1, 2)
# ISO 639-1 says two letters, but the model lists hold fil and yue (A4): two or three.
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_UNIT = ("stability", "similarity_boost", "style")

VoiceLookup = Callable[[str], dict[str, Any] | None]


def _fail(msg: str) -> ErrorAnswer:
    return ErrorAnswer(codes.PARAM_ERROR, msg)


def _number(where: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"{where} must be a number")
    if not low <= value <= high:
        raise _fail(f"{where} must be from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _integer(where: str, value: Any, allowed: tuple[int, ...] | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{where} must be an integer")
    if allowed is not None and value not in allowed:
        raise _fail(f"{where} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def _object(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(f"{where} must be a JSON object")
    return dict(value)


def _string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{name} must be a string")
    return value


def _url(name: str, value: str | None, *, required: bool = False) -> str:
    if not value:
        if required:
            raise _fail(f"{name} cannot be empty")
        return ""
    if not value.startswith(("http://", "https://")):
        raise _fail(f"{name} must be an http(s) URL")
    return value


@dataclass(frozen=True, slots=True)
class AudioSetting:
    """``extra_options.audio_setting`` with the documented defaults."""

    format: str = "mp3"
    sample_rate: int = 32000
    bitrate: int = 128000
    channel: int = 1


@dataclass(frozen=True, slots=True)
class TtsRequest:
    """A valid tts body, with the voice record it resolves to."""

    input_text: str
    voice: dict[str, Any]
    voice_options: dict[str, Any]
    extra_options: dict[str, Any]
    language_code: str | None
    pitch: int | None
    webhook_url: str
    audio: AudioSetting


@dataclass(frozen=True, slots=True)
class CloneRequest:
    """A valid clone body."""

    source_voice_file: str
    name: str
    voice_model_name: str
    voice_options: dict[str, Any]
    webhook_url: str


def check_voice_options(options: dict[str, Any]) -> None:
    """The documented ranges of ``voice_options`` (tts)."""
    if "speed" in options:
        _number("voice_options.speed", options["speed"], 0.7, 1.2)
    for name in _UNIT:
        if name in options:
            _number(f"voice_options.{name}", options[name], 0.0, 1.0)
    if "speaker_boost" in options and not isinstance(options["speaker_boost"], bool):
        raise _fail("voice_options.speaker_boost must be true or false")
    if "emotion" in options and options["emotion"] not in EMOTIONS:
        raise _fail(f"voice_options.emotion must be one of {', '.join(EMOTIONS)}")
    if "volume" in options:
        volume = _integer("voice_options.volume", options["volume"])
        if not 0 <= volume <= 100:
            raise _fail(f"voice_options.volume must be from 0 to 100, got {volume}")


def _audio_setting(extra: dict[str, Any]) -> AudioSetting:
    raw = _object("extra_options.audio_setting", extra.get("audio_setting"))
    fmt = raw.get("format", "mp3")
    if fmt not in FORMATS:
        raise _fail(f"extra_options.audio_setting.format must be mp3 or wav, got {fmt!r}")
    where = "extra_options.audio_setting"
    return AudioSetting(
        format=fmt,
        sample_rate=_integer(f"{where}.sample_rate", raw.get("sample_rate", 32000), SAMPLE_RATES),
        bitrate=_integer(f"{where}.bitrate", raw.get("bitrate", 128000), BITRATES),
        channel=_integer(f"{where}.channel", raw.get("channel", 1), CHANNELS),
    )


def _pitch(body: Mapping[str, Any], extra: dict[str, Any]) -> int | None:
    # The table puts pitch among extra_options' children, every example at the top (A3).
    value = body.get("pitch", extra.get("pitch"))
    if value is None:
        return None
    pitch = _integer("pitch", value)
    if not -12 <= pitch <= 12:
        raise _fail(f"pitch must be from -12 to 12, got {pitch}")
    return pitch


def parse_tts_request(body: Any, plan: Plan, find_voice: VoiceLookup) -> TtsRequest:
    """The request of a v4 ``tts`` call, or ``ErrorAnswer(1003)``."""
    if not isinstance(body, Mapping):
        raise _fail("request body must be a JSON object")
    text = _string(body, "input_text")
    if text is None or not text.strip():
        raise _fail("input_text cannot be empty")
    if characters(text) > plan.max_chars:
        raise _fail(
            f"input_text is limited to {plan.max_chars} characters on the {plan.name} plan, "
            f"got {characters(text)}"
        )
    voice_id = _string(body, "voice_id")
    if not voice_id:
        raise _fail("voice_id cannot be empty")
    voice = find_voice(voice_id)
    if voice is None:
        raise _fail(f"voice_id {voice_id!r} does not exist")
    options = _object("voice_options", body.get("voice_options"))
    check_voice_options(options)
    language = _string(body, "language_code")
    if language is not None and not _LANGUAGE.match(language):
        raise _fail(f"language_code must be an ISO 639 code such as zh or pt, got {language!r}")
    extra = _object("extra_options", body.get("extra_options"))
    return TtsRequest(
        input_text=text,
        voice=voice,
        voice_options=options,
        extra_options=extra,
        language_code=language,
        pitch=_pitch(body, extra),
        webhook_url=_url("webhookUrl", _string(body, "webhookUrl")),
        audio=_audio_setting(extra),
    )


def _tag_list(where: str, value: Any) -> list[str]:
    # An array in the request, a string in the response (A13): accept both.
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) for i in items):
        raise _fail(f"{where} must be a list of strings")
    return [i for i in items if i]


def parse_clone_request(body: Any) -> CloneRequest:
    """The request of a v4 ``clone`` call, or ``ErrorAnswer(1003)``."""
    if not isinstance(body, Mapping):
        raise _fail("request body must be a JSON object")
    source = _url("source_voice_file", _string(body, "source_voice_file"), required=True)
    model = _string(body, "voice_model_name") or DEFAULT_CLONE_MODEL
    if model not in MODELS:
        raise _fail(f"voice_model_name must be one of {', '.join(MODELS)}, got {model!r}")
    if model not in CLONABLE:
        raise _fail(f"{model} cannot clone voices")
    options = _object("voice_options", body.get("voice_options"))
    for tag in ("style", "gender", "age", "scenario"):
        if tag in options:
            options[tag] = _tag_list(f"voice_options.{tag}", options[tag])
    for flag in ("remove_background_noise", "need_volume_normalization"):
        if flag in options and not isinstance(options[flag], bool):
            raise _fail(f"voice_options.{flag} must be true or false")
    for text in ("language", "clone_prompt"):
        if text in options and not isinstance(options[text], str):
            raise _fail(f"voice_options.{text} must be a string")
    return CloneRequest(
        source_voice_file=source,
        name=_string(body, "name") or "",
        voice_model_name=model,
        voice_options=options,
        webhook_url=_url("webhookUrl", _string(body, "webhookUrl")),
    )
