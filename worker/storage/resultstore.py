"""What every result store offers the pipeline: take a downloaded file, hand out a link to it,
say at start whether it can be written, and purge what is past retention.

A store never holds a file in memory: the download streams to a file in ``staging_dir`` (on the
same filesystem as a local store, so the move into place is an atomic rename), and ``put``
moves or uploads that file. ``put`` is idempotent: run again after a crash it leaves one
object, and an object already there with the same sha256 is not written again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """Raised when the store cannot take or give a result now (unreachable, throttled, refused,
    a missing bucket, wrong credentials). Always worth trying again: a result Akool has made is
    paid for, so the pipeline retries for up to ``STORAGE_RETRY_WINDOW`` before it gives up."""


@dataclass(frozen=True)
class Stored:
    """Where a result now lives: ``location`` is ``s3://bucket/key`` or an absolute path;
    ``file`` is that path for a local store and None for object storage."""

    location: str
    file: str | None
    uploaded: bool = True  # False: an identical object was already there


@dataclass
class Purged:
    """What a purge deleted: object or file names and their total size."""

    names: list[str] = field(default_factory=list)
    bytes: int = 0


class ResultStore(Protocol):
    #: Where ``download`` writes before ``put`` (a local store's own directory).
    staging_dir: Path

    def describe(self) -> str:
        """Where results go, for logs and messages (never a secret)."""
        ...

    def put(
        self,
        path: Path,
        name: str,
        *,
        sha256: str,
        size: int,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> Stored:
        """Move or upload the file at ``path`` to ``name`` (``<job_id>.<ext>``); ``path`` is gone
        afterwards. Raises :class:`StorageError`; the object then appears whole or not at all,
        and ``path`` is left in place for the next attempt. ``metadata`` (``job_id``,
        ``akool_id``) is stored with an object, with ``sha256``."""
        ...

    def download_url(self, location: str, ttl: int) -> str | None:
        """A fresh link to a stored result valid for ``ttl`` seconds, or None (a local store).
        Raises :class:`StorageError` for a location that is not this store's, or when no link
        can be signed (no credentials)."""
        ...

    def delete(self, location: str) -> None:
        """Delete one stored result (a job cancelled while its result was being stored); a
        result that is not there is no error. Raises :class:`StorageError` for a location that
        is not this store's."""
        ...

    def check(self) -> None:
        """Raise :class:`StorageError` saying what is wrong when results cannot be written."""
        ...

    def purge(self, older_than: float, keep: Collection[str]) -> Purged:
        """Delete results last written before ``older_than`` (epoch seconds), except those of
        the job ids in ``keep`` (a name's job id is its stem: ``<job_id>`` of
        ``<job_id>.<ext>``), and stale partial files in ``staging_dir``. Never touches anything
        outside the store's own directory or prefix."""
        ...
