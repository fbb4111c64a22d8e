"""VoiceLab (v4) voices: Akool's (``type=2``), the account's own clones (``type=1``), the
paginated list and its filters.

Akool's voices span the four models (``voice_model_name``); two of the account's clones exist
from the start, and every clone made through ``POST /api/open/v4/voice/clone`` joins ``type=1``
(with ``voice_id`` and ``preview`` null until it is done). ``voice_id`` comes in the two shapes
the docs show: 20 characters (ElevenLabs-like) and 64 URL-safe characters (A1). ``preview`` is a
sandbox path, made absolute under the server when answered.
"""

from __future__ import annotations

from typing import Any

from sandbox.tokens import UID

MODEL_1, MODEL_2, MODEL_3, MODEL_4 = (f"Akool Multilingual {n}" for n in (1, 2, 3, 4))
MODELS = (MODEL_1, MODEL_2, MODEL_3, MODEL_4)
CLONABLE = (MODEL_1, MODEL_3, MODEL_4)
STREAMING = (MODEL_1, MODEL_3)  # the voice list says models 1 and 3 stream
TEAM_ID = "6805fb69e92d9edc7ca0b409"
DEFAULT_CLONE_MODEL = MODEL_1  # undocumented (A21): the first model that can clone
PREVIEW_TEXT = "Hello! This is my cloned voice. Nice to meet you."  # the fixed greeting

# (voice_id, name, gender, language, locale, model, style, age, scenario)
_AKOOL = [
    ("hkfHEbBvdQFNX4uWHqRF", "Sophia", "Female", "English", "en", MODEL_1, "Calm", "Young",
     "Education"),
    ("Ya1mNdQ7pZcW3rTg8uHs", "Liam", "Male", "English", "en", MODEL_1, "Confident", "Middle",
     "Advertisement"),
    ("Tq06jbVyhW2sPL0mA9xcRkZt4nE7uF1gDbC3oJ5iQ8vYwXe6MaNz2HlKpSrTdUfG",
     "Mei", "Female", "Chinese", "zh", MODEL_2, "Enthusiastic", "Young", "Advertisement"),
    ("Zk4pR8sT1vW5xY9bC2dF6gH0jL3mN7qS4tV8wX2zA6cE0gI4kM8oQ2sU6wY0aC4e",
     "Oskar", "Male", "Polish", "pl", MODEL_2, "Authoritative", "Elderly", "Education"),
    ("Mx3nB7vC1xZ5lK9jH2gF6dS0aP4oI8uY3tR7eW1qA5sD9fG3hJ7kL1zX5cV9bN3m",
     "Hana", "Female", "Japanese", "ja", MODEL_3, "Calm", "Middle", "Education"),
    ("Ct7yU2iO6pA0sD4fG8hJ2kL6zX0cV4bN8mQ2wE6rT0yU4iO8pA2sD6fG0hJ4kL8z",
     "Wing", "Male", "Cantonese", "yue", MODEL_3, "Confident", "Young", "Advertisenment"),
    ("Pb9rL4mK8nJ2hG6fD0sA4pO8iU2yT6rE0wQ4zX8cV2bN6mL0kJ4hG8fD2sA6pO0i",
     "Ana", "Female", "Portuguese", "pt", MODEL_4, "Enthusiastic", "Young", "Advertisement"),
]  # fmt: skip
_MINE = [
    ("sbxV4CloneNoraA00001", "Nora (my clone)", "Female", "English", "en", MODEL_1, "Calm",
     "Middle", "Education"),
    ("sbxV4CloneKenjiB0002", "Kenji (my clone)", "Male", "Japanese", "ja", MODEL_3, "Calm",
     "Young", "Education"),
]  # fmt: skip
_FIELDS = ("voice_id", "name", "gender", "language", "locale", "voice_model_name")


def _record(n: int, kind: int, row: tuple[str, ...]) -> dict[str, Any]:
    voice = dict(zip(_FIELDS, row[:6], strict=True))
    style, age, scenario = row[6:]
    created = 1751350368172 + n * 1000
    return {
        "_id": f"6889b628662160e2caad5{n:03x}",
        "uid": 1 if kind == 2 else UID,
        "team_id": TEAM_ID,
        **voice,
        "preview": f"/previews/{voice['voice_id']}.wav",
        "text": PREVIEW_TEXT if kind == 1 else f"Hi, I am {voice['name']}.",
        "duration": 3200,
        "status": 3,
        "create_time": created,
        "update_time": created + 4800,
        "style": [style],
        "scenario": [scenario],
        "age": [age],
        "deduction_credit": 0,
        "webhookUrl": "",
        "support_stream": voice["voice_model_name"] in STREAMING,
        "type": kind,
    }


AKOOL_VOICES: tuple[dict[str, Any], ...] = tuple(
    _record(0xB10 + i, 2, row) for i, row in enumerate(_AKOOL)
)
OWN_VOICES: tuple[dict[str, Any], ...] = tuple(
    _record(0xB30 + i, 1, row) for i, row in enumerate(_MINE)
)
V4_VOICE_IDS: tuple[str, ...] = tuple(v["voice_id"] for v in AKOOL_VOICES + OWN_VOICES)


def absolute(voice: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The record as answered: ``preview`` under the server (null stays null), no ``type``."""
    out = {k: v for k, v in voice.items() if k != "type"}
    if isinstance(out.get("preview"), str) and out["preview"].startswith("/"):
        out["preview"] = base_url + out["preview"]
    return out


def _tags(value: Any) -> set[str]:
    # The docs spell the scenario tag both "Advertisement" and "Advertisenment" (A12).
    items = value if isinstance(value, list) else [value]
    return {str(i).lower().replace("advertisenment", "advertisement") for i in items if i}


def matches(voice: dict[str, Any], filters: dict[str, str]) -> bool:
    """The list's filters: ``name`` fuzzy; ``gender``, ``style``, ``age``, ``scenario``
    comma-separated (any of them); ``support_stream`` 1 (streams) or 2 (does not)."""
    name = filters.get("name", "").strip().lower()
    if name and name not in str(voice.get("name") or "").lower():
        return False
    for key in ("gender", "style", "age", "scenario"):
        wanted = _tags([w.strip() for w in filters.get(key, "").split(",") if w.strip()])
        if wanted and not wanted & _tags(voice.get(key)):
            return False
    stream = filters.get("support_stream", "")
    return not stream or (stream == "1") == bool(voice.get("support_stream"))
