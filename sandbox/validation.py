"""What a create or clone body must hold; every failure is 1003 with a message saying what.

``parse_job_request`` checks the whole body before anything is created, so a request that fails
validation creates nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox import codes, voices
from sandbox.errors import ErrorAnswer
from worker.akool.validation import count_words

MAX_WORDS = 5000
_RATE = re.compile(r"^(\d+(?:\.\d+)?)%$")


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A valid create or clone body, with the voice it resolves to."""

    input_text: str
    rate: str
    voice_id: str | None
    voice_url: str | None
    webhook_url: str
    voice_model_id: str


def _text_field(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ErrorAnswer(codes.PARAM_ERROR, f"{name} must be a string")
    return value


def _fail(msg: str) -> ErrorAnswer:
    return ErrorAnswer(codes.PARAM_ERROR, msg)


def parse_job_request(endpoint: str, body: Any) -> JobRequest:
    """The request of a ``create`` or ``clone`` call, or ``ErrorAnswer(1003)``."""
    if not isinstance(body, Mapping):
        raise _fail("request body must be a JSON object")
    text = _text_field(body, "input_text")
    if text is None or not text.strip():
        raise _fail("input_text cannot be empty")
    if count_words(text) > MAX_WORDS:
        raise _fail(f"input_text is limited to {MAX_WORDS} words")
    rate = _text_field(body, "rate")
    if rate is None and endpoint == "clone":
        raise _fail("rate cannot be empty")
    rate = "100%" if rate is None else rate
    match = _RATE.match(rate)
    if match is None or not 0 <= float(match.group(1)) <= 100:
        raise _fail(f'rate must be a percentage from "0%" to "100%", got {rate!r}')
    voice_id = _text_field(body, "voice_id") or None
    voice_url = (_text_field(body, "voice_url") or None) if endpoint == "clone" else None
    if endpoint == "create" and voice_id is None:
        raise _fail("voice_id cannot be empty")
    if endpoint == "clone" and voice_id is None and voice_url is None:
        raise _fail("voice_id and voice_url must provide one")
    voice = voices.find(voice_id) if voice_id is not None else None
    if voice_id is not None and voice is None:
        raise _fail(f"voice_id {voice_id!r} does not exist")
    if voice_url is not None and not voice_url.startswith(("http://", "https://")):
        raise _fail("voice_url must be an http(s) URL")
    hook = _text_field(body, "webhookUrl") or ""
    if hook and not hook.startswith(("http://", "https://")):
        raise _fail("webhookUrl must be an http(s) URL")
    return JobRequest(
        input_text=text,
        rate=rate,
        voice_id=voice_id,
        voice_url=voice_url,
        webhook_url=hook,
        # a clone from a sample gets a fresh voice document, as if Akool had cloned it
        voice_model_id=voice["_id"] if voice is not None else os.urandom(12).hex(),
    )
