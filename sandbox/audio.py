"""Deterministic, playable WAV files (RIFF, PCM 16-bit) streamed in chunks.

A file is a sequence of 80 ms "words": a 60 ms tone on one of twelve pentatonic notes, then 20 ms
of silence. The notes come from a ``random.Random`` seeded with the job's id and text, so a job's
bytes never change and two jobs differ. The tones are precomputed once, so a 100 MB file streams
as fast as bytes can be joined, without ever sitting whole in memory.

v3 files are mono at 16 kHz. A v4 request's ``extra_options.audio_setting`` picks the sample
rate and the channels (``format: wav``); both channels of a stereo file carry the same tone.
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
# By default a file holds at most ~30 s of audio (375 words), under 1 MB at v3's format.
MAX_WORDS_OF_AUDIO = 375
DEFAULT_MAX_DATA_BYTES = MAX_WORDS_OF_AUDIO * SEGMENT_BYTES
_NOTES = [220.0 * 2 ** (k / 12) for k in (0, 2, 4, 7, 9, 12, 14, 16, 19, 21, 24, 26)]
_CHUNK = 64 * 1024


def segment_bytes(sample_rate: int = SAMPLE_RATE, channels: int = 1) -> int:
    """The bytes of one 80 ms word at this rate and channel count."""
    return int(sample_rate * WORD_SECONDS) * SAMPLE_WIDTH * channels


@functools.cache
def _segment(note: int, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    if (sample_rate, channels) == (SAMPLE_RATE, 1):
        tone, total = _TONE_SAMPLES, _TONE_SAMPLES + _GAP_SAMPLES
    else:
        tone, total = int(sample_rate * 0.06), int(sample_rate * WORD_SECONDS)
    freq, fade = _NOTES[note], max(1, sample_rate // 200)  # 5 ms fades avoid clicks
    samples = array.array("h", bytes(total * SAMPLE_WIDTH * channels))
    for i in range(tone):
        envelope = min(1.0, i / fade, (tone - 1 - i) / fade)
        value = int(9000 * envelope * math.sin(2 * math.pi * freq * i / sample_rate))
        for c in range(channels):
            samples[i * channels + c] = value
    if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    return samples.tobytes()


def header(data_bytes: int, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * SAMPLE_WIDTH * channels,
        SAMPLE_WIDTH * channels,
        8 * SAMPLE_WIDTH,
        b"data",
        data_bytes,
    )


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """Everything that determines a file: the seed, the PCM length and its format."""

    seed: bytes
    data_bytes: int
    sample_rate: int = SAMPLE_RATE
    channels: int = 1

    @property
    def duration_ms(self) -> int:
        """The audio's length in milliseconds (v4's ``duration``)."""
        frame = SAMPLE_WIDTH * self.channels
        return round(1000 * self.data_bytes / (frame * self.sample_rate))

    @property
    def size(self) -> int:
        return HEADER_BYTES + self.data_bytes

    @classmethod
    def for_text(
        cls,
        key: str,
        text: str,
        forced_bytes: int | None = None,
        sample_rate: int = SAMPLE_RATE,
        channels: int = 1,
    ) -> AudioSpec:
        """80 ms per word (at least one), at most ~30 s; ``forced_bytes`` sets the size."""
        seed = hashlib.sha256(f"{key}\0{text}".encode()).digest()
        frame = SAMPLE_WIDTH * channels
        if forced_bytes is not None:
            data = max(frame, forced_bytes - HEADER_BYTES)
            return cls(seed, data - data % frame, sample_rate, channels)
        words = max(1, count_words(text))
        per_word = segment_bytes(sample_rate, channels)
        return cls(seed, min(words, MAX_WORDS_OF_AUDIO) * per_word, sample_rate, channels)

    def chunks(self, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The whole file, header first, in chunks of about ``chunk_size`` bytes."""
        yield header(self.data_bytes, self.sample_rate, self.channels)
        rng = random.Random(self.seed)
        left, pending, pending_len = self.data_bytes, [], 0
        while left > 0:
            seg = _segment(rng.randrange(len(_NOTES)), self.sample_rate, self.channels)[:left]
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
