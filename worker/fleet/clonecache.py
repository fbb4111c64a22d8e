"""VoiceLab (v4) voices cloned from a sample, remembered in Redis so that the same sample is
never cloned twice: cloned voices are a scarce quota (30 on Akool's Pro plan).

A sample is named by the hash of its URL and the clone's options (``sample_key``). Its entry, a
hash at ``{prefix}:clones:{key}`` kept ``VOICE_CLONE_TTL_DAYS``, goes through:

- ``inflight``: a worker is POSTing the clone (or crashed while it did: the clone may exist);
- ``pending``: Akool has the voice (``voice_doc_id``), not ready yet: poll it;
- ``ready``: the voice speaks (``voice_id``); every job for this sample uses it.

Only the holder of the sample's lease (``{prefix}:clone-lease:{key}``, SET NX with a token and
a TTL, like a job's submit lease) may POST a clone, and it writes the entry before it lets the
lease go: a redelivered message or a second job for the same sample finds the entry, or waits
while the lease is held. A failed voice is forgotten, so that a later job may clone again.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from config.settings import Settings
from worker.lua import source

__all__ = ["CloneCache", "ClonedSample", "sample_key"]


def sample_key(
    source_voice_file: str,
    voice_model_name: str | None,
    clone_options: Mapping[str, Any] | None,
) -> str:
    """The hash that names a sample: its URL and the options it is cloned with."""
    canonical = json.dumps(
        {
            "source_voice_file": source_voice_file,
            "voice_model_name": voice_model_name,
            "clone_options": dict(clone_options or {}),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ClonedSample:
    key: str
    state: str  # inflight, pending or ready
    voice_doc_id: str | None
    voice_id: str | None
    model: str | None
    job_id: str | None  # the job that cloned it
    since: float


class CloneCache:
    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.ttl = max(1, int(settings.voice_clone_ttl_days * 86400))
        self._prefix = settings.key("clones")
        self._lease_prefix = settings.key("clone-lease")
        self._unlock = r.register_script(source("delete_if_equals"))

    def _entry(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def _lease(self, key: str) -> str:
        return f"{self._lease_prefix}:{key}"

    def get(self, key: str) -> ClonedSample | None:
        h = cast(dict[str, str], self.r.hgetall(self._entry(key)))
        if not h.get("state"):
            return None
        return ClonedSample(
            key=key,
            state=h["state"],
            voice_doc_id=h.get("voice_doc_id") or None,
            voice_id=h.get("voice_id") or None,
            model=h.get("model") or None,
            job_id=h.get("job_id") or None,
            since=float(h.get("since") or 0),
        )

    def lease(self, key: str, seconds: float) -> str | None:
        """The sample's clone lease (a token to release it with), or None while another holds
        it."""
        token = uuid.uuid4().hex
        ok = self.r.set(self._lease(key), token, nx=True, px=max(1, int(seconds * 1000)))
        return token if ok else None

    def release(self, key: str, token: str) -> None:
        """Let the lease go, if it is still ours (it may have expired and been taken)."""
        self._unlock(keys=[self._lease(key)], args=[token])

    def _write(self, key: str, **fields: str | float) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self._entry(key), mapping=cast(Any, fields))
            pipe.expire(self._entry(key), self.ttl)
            pipe.execute()

    def inflight(self, key: str, job_id: str) -> None:
        """This lease holder is about to POST the clone."""
        self.r.delete(self._entry(key))
        self._write(key, state="inflight", job_id=job_id, since=time.time())

    def pending(self, key: str, voice_doc_id: str, model: str | None, job_id: str) -> None:
        """Akool has the voice (its document ``_id``); it is not ready yet."""
        self._write(
            key,
            state="pending",
            voice_doc_id=voice_doc_id,
            model=model or "",
            job_id=job_id,
            since=time.time(),
        )

    def ready(self, key: str, voice_doc_id: str, voice_id: str, model: str | None) -> None:
        """The voice speaks: every job for this sample uses ``voice_id`` from now on."""
        self._write(
            key, state="ready", voice_doc_id=voice_doc_id, voice_id=voice_id, model=model or ""
        )

    def forget(self, key: str) -> None:
        """The voice failed (or never came): a later job may clone this sample again."""
        self.r.delete(self._entry(key))
