"""The voices the sandbox knows: six official ones (``from`` 3) and two user-made (``from`` 4).

The official ids are public ElevenLabs "premade" ids, as Akool's real list uses; the user-made
ones are invented. ``preview`` is a sandbox path: the voice list answers it as an absolute URL
under the server (``{sb.url}/previews/{voice_id}.wav``), so nothing points off loopback.
"""

from __future__ import annotations

from typing import Any

_FIELDS = ("voice_id", "name", "gender", "accent", "description", "useCase")

_OFFICIAL = [
    ("piTKgcLEGmPE4e6mEKli", "Nicole", "Female", "american", "whisper", "audiobook"),
    ("LcfcDJNUP1GQjkzn1xUU", "Emily", "Female", "american", "calm", "meditation"),
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", "Female", "american", "calm", "narration"),
    ("ErXwobaYiN019PkySvjV", "Antoni", "Male", "american", "well-rounded", "narration"),
    ("TxGEqnHWrfWFTfGW9XjX", "Josh", "Male", "american", "deep", "narration"),
    ("VR6AewLTigWg4xSOukaG", "Arnold", "Male", "american", "crisp", "narration"),
]
_USER = [
    ("sbxUserVoiceAlice001", "Alice (my clone)", "Female", "british", "cloned", "custom"),
    ("sbxUserVoiceBruno002", "Bruno (my clone)", "Male", "italian", "cloned", "custom"),
]


def _record(n: int, source: int, row: tuple[str, ...]) -> dict[str, Any]:
    voice = dict(zip(_FIELDS, row, strict=True))
    return {
        "_id": f"65e980d7af040969db5be{n:03x}",
        "create_time": 1687181385319 + n * 1000,
        "uid": 1 if source == 3 else 101690,
        "from": source,
        **voice,
        "type": 1,
        "preview": f"/previews/{voice['voice_id']}.wav",
        "__v": 0,
    }


VOICES: tuple[dict[str, Any], ...] = tuple(
    [_record(0x850 + i, 3, row) for i, row in enumerate(_OFFICIAL)]
    + [_record(0x870 + i, 4, row) for i, row in enumerate(_USER)]
)
OFFICIAL_VOICE_IDS: tuple[str, ...] = tuple(v["voice_id"] for v in VOICES if v["from"] == 3)
USER_VOICE_IDS: tuple[str, ...] = tuple(v["voice_id"] for v in VOICES if v["from"] == 4)
_BY_ID = {v["voice_id"]: v for v in VOICES}


def find(voice_id: str) -> dict[str, Any] | None:
    return _BY_ID.get(voice_id)


def listing(base_url: str, source: int | None) -> list[dict[str, Any]]:
    """The voice list as Akool answers it, previews made absolute."""
    return [
        {**v, "preview": base_url + v["preview"]}
        for v in VOICES
        if source is None or v["from"] == source
    ]
