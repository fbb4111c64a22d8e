"""Deterministic, playable WAV files (RIFF, PCM 16-bit mono, 16 kHz) streamed in chunks.

A file is a sequence of 80 ms "words": a 60 ms tone on one of twelve pentatonic notes, then 20 ms
of silence. The notes come from a ``random.Random`` seeded with the job's id and text, so a job's
bytes never change and two jobs differ. The tones are precomputed once, so a 100 MB file streams
as fast as bytes can be joined, without ever sitting whole in memory.
"""

from __future__ import annotations

import array
import functools
import hashlib
import math
import random
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from worker.akool.validation import count_words

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2
HEADER_BYTES = 44
WORD_SECONDS = 0.08
_TONE_SAMPLES = int(SAMPLE_RATE * 0.06)
_GAP_SAMPLES = int(SAMPLE_RATE * WORD_SECONDS) - _TONE_SAMPLES
SEGMENT_BYTES = (_TONE_SAMPLES + _GAP_SAMPLES) * SAMPLE_WIDTH
# By default a file holds at most ~30 s of audio, so it stays under 1 MB.
DEFAULT_MAX_DATA_BYTES = 375 * SEGMENT_BYTES
_NOTES = [220.0 * 2 ** (k / 12) for k in (0, 2, 4, 7, 9, 12, 14, 16, 19, 21, 24, 26)]
_CHUNK = 64 * 1024


@functools.cache
def _segment(note: int) -> bytes:
    freq, fade = _NOTES[note], SAMPLE_RATE // 200  # 5 ms fades avoid clicks
    samples = array.array("h", bytes(SEGMENT_BYTES))
    for i in range(_TONE_SAMPLES):
        envelope = min(1.0, i / fade, (_TONE_SAMPLES - 1 - i) / fade)
        samples[i] = int(9000 * envelope * math.sin(2 * math.pi * freq * i / SAMPLE_RATE))
    if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    return samples.tobytes()


def header(data_bytes: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        SAMPLE_RATE,
        SAMPLE_RATE * SAMPLE_WIDTH,
        SAMPLE_WIDTH,
        8 * SAMPLE_WIDTH,
        b"data",
        data_bytes,
    )


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """Everything that determines a file: the seed and the PCM length."""

    seed: bytes
    data_bytes: int

    @property
    def size(self) -> int:
        return HEADER_BYTES + self.data_bytes

    @classmethod
    def for_text(cls, key: str, text: str, forced_bytes: int | None = None) -> AudioSpec:
        """80 ms per word (at least one), capped under 1 MB; ``forced_bytes`` sets the size."""
        seed = hashlib.sha256(f"{key}\0{text}".encode()).digest()
        if forced_bytes is not None:
            data = max(SAMPLE_WIDTH, forced_bytes - HEADER_BYTES)
            return cls(seed, data - data % SAMPLE_WIDTH)
        words = max(1, count_words(text))
        return cls(seed, min(words * SEGMENT_BYTES, DEFAULT_MAX_DATA_BYTES))

    def chunks(self, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The whole file, header first, in chunks of about ``chunk_size`` bytes."""
        yield header(self.data_bytes)
        rng = random.Random(self.seed)
        left, pending, pending_len = self.data_bytes, [], 0
        while left > 0:
            seg = _segment(rng.randrange(len(_NOTES)))[:left]
            left -= len(seg)
            pending.append(seg)
            pending_len += len(seg)
            if pending_len >= chunk_size or left == 0:
                yield b"".join(pending)
                pending, pending_len = [], 0

    def digest(self) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks():
            h.update(chunk)
        return h.hexdigest()

    def render(self) -> bytes:
        return b"".join(self.chunks())
