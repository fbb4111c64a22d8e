"""Stream a result file to ``AUDIO_DIR/<job_id>.<ext>`` through a temporary file and an atomic
rename, computing sha256 and size on the way, under a size cap and with every redirect hop
checked by :mod:`worker.egress.netguard` and connected to the checked address only
(:mod:`worker.egress.pinned`). Memory stays flat whatever the file's size."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from worker.egress import pinned
from worker.egress.netguard import UnresolvedHost, UnsafeURL, check_url
from worker.jobs.record import ErrorCode
from worker.jobs.request import is_job_id

_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/ogg": "ogg",
    "audio/aac": "aac",
    "audio/mp4": "m4a",
}
_CHUNK = 64 * 1024
_MAX_REDIRECTS = 5


class DownloadError(Exception):
    """Raised when a download fails; ``retryable`` says whether trying again may help."""

    retryable = False
    code = ErrorCode.DOWNLOAD_ERROR


class DownloadGone(DownloadError):
    """Raised when the result URL answers 403, 404 or 410: it has expired or never existed."""

    code = ErrorCode.DOWNLOAD_GONE


class DownloadTooLarge(DownloadError):
    """Raised when the file exceeds ``DOWNLOAD_MAX_BYTES``."""

    code = ErrorCode.DOWNLOAD_TOO_LARGE


class DownloadRefused(DownloadError):
    """Raised when the URL or a redirect points somewhere we must not go."""

    code = ErrorCode.DOWNLOAD_REFUSED


class DownloadTransient(DownloadError):
    """Raised on network errors, timeouts and 5xx answers."""

    retryable = True
    code = ErrorCode.DOWNLOAD_TRANSIENT


#: The content type of each audio file extension (also what the dashboard serves a file as).
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "flac": "audio/flac",
}


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    bytes: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.path.suffix.lstrip("."), "application/octet-stream")


def safe_job_filename(job_id: str, ext: str) -> str:
    if not is_job_id(job_id):
        raise DownloadRefused(f"job id {job_id!r} cannot be used as a file name")
    return f"{job_id}.{ext}"


def _extension(url: str, content_type: str | None) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower().lstrip(".")
    if suffix in {"mp3", "wav", "ogg", "aac", "m4a", "flac"}:
        return suffix
    ctype = (content_type or "").split(";")[0].strip().lower()
    return _EXTENSIONS.get(ctype, "mp3")


def download(
    session: requests.Session,
    url: str,
    audio_dir: Path,
    job_id: str,
    *,
    max_bytes: int,
    timeout: float,
    connect_timeout: float = 5.0,
    allow_hosts: Collection[str] = (),
    total_timeout: float | None = None,
) -> Downloaded:
    """Download ``url`` to ``audio_dir``; every failure is a :class:`DownloadError`.

    ``total_timeout`` bounds the whole transfer (the thread pool enforces no task time limit,
    and ``timeout`` only bounds each read).
    """
    try:
        return _download(
            session,
            url,
            audio_dir,
            job_id,
            max_bytes=max_bytes,
            timeout=timeout,
            connect_timeout=connect_timeout,
            allow_hosts=allow_hosts,
            deadline=None if total_timeout is None else time.monotonic() + total_timeout,
        )
    except DownloadError:
        raise
    except UnresolvedHost as exc:
        raise DownloadTransient(str(exc)) from None
    except (OSError, ValueError, requests.RequestException) as exc:
        # A full or read-only AUDIO_DIR, a malformed redirect, a broken encoding: retried
        # within the job's budget, then the job fails with the reason instead of hanging.
        raise DownloadTransient(f"download failed: {type(exc).__name__}: {exc}"[:300]) from None


def _download(
    session: requests.Session,
    url: str,
    audio_dir: Path,
    job_id: str,
    *,
    max_bytes: int,
    timeout: float,
    connect_timeout: float,
    allow_hosts: Collection[str],
    deadline: float | None,
) -> Downloaded:
    audio_dir.mkdir(parents=True, exist_ok=True)
    current = url
    for _ in range(_MAX_REDIRECTS + 1):
        try:
            checked = check_url(current, allow_hosts)
        except UnresolvedHost:
            raise
        except UnsafeURL as exc:
            raise DownloadRefused(f"refused to download {current}: {exc}") from None
        try:
            # To the addresses just checked, never to another answer of the resolver.
            resp = pinned.request(
                session, "GET", checked, stream=True, timeout=(connect_timeout, timeout)
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DownloadTransient(f"download failed: {type(exc).__name__}") from None
        with resp:
            if resp.is_redirect and resp.headers.get("location"):
                current = urljoin(current, resp.headers["location"])
                continue
            if resp.status_code in (403, 404, 410):
                raise DownloadGone(
                    f"result url answered HTTP {resp.status_code}: it has expired or does not "
                    "exist (Akool keeps results for 7 days)"
                )
            if resp.status_code >= 500 or resp.status_code in (408, 429):
                raise DownloadTransient(f"result url answered HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise DownloadError(f"result url answered HTTP {resp.status_code}")
            length = resp.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise DownloadTooLarge(
                    f"file is {int(length)} bytes, over DOWNLOAD_MAX_BYTES={max_bytes}"
                )
            name = safe_job_filename(job_id, _extension(current, resp.headers.get("content-type")))
            return _stream(resp, audio_dir, name, max_bytes, deadline)
    raise DownloadRefused(f"more than {_MAX_REDIRECTS} redirects")


def _stream(
    resp: requests.Response, audio_dir: Path, name: str, max_bytes: int, deadline: float | None
) -> Downloaded:
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=audio_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in resp.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadTooLarge(f"file exceeds DOWNLOAD_MAX_BYTES={max_bytes}")
                    digest.update(chunk)
                    out.write(chunk)
                    if deadline is not None and time.monotonic() > deadline:
                        raise DownloadTransient(f"download too slow: {size} bytes before the limit")
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise DownloadTransient(f"download interrupted: {type(exc).__name__}") from None
            out.flush()
            os.fsync(out.fileno())
        expected = resp.headers.get("content-length")
        if expected and expected.isdigit() and int(expected) != size:
            raise DownloadTransient(f"download truncated: {size} of {expected} bytes")
        final = audio_dir / name
        os.replace(tmp, final)
        return Downloaded(final, digest.hexdigest(), size)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
