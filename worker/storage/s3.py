"""Results in any S3-compatible object store (``AUDIO_STORE=s3://BUCKET/PREFIX``).

Objects are ``PREFIX/<job_id>.<ext>``. A download is staged in a local directory and uploaded
from there with boto3's transfer manager, which streams the file (multipart above 8 MB, a few
parts in flight), so memory stays flat whatever the size; a result under the multipart
threshold is one conditional PUT. The object appears whole or not at
all: a failed multipart upload is aborted. s3transfer does that itself when it can (a failure
cleanup registered by CreateMultipartUploadTask, s3transfer/tasks.py), but it has no upload id
when CreateMultipartUpload's answer was lost, and when the abort itself fails it only logs it at
debug level (TransferCoordinator._run_callback, s3transfer/futures.py). So :meth:`S3Store.put`
also aborts every incomplete upload of the key after a failed multipart upload and after a
successful one (what an earlier attempt left), and :meth:`S3Store.purge` aborts stale ones under
the prefix.

Credentials come from boto3's standard chain only; nothing here reads or prints them, and every
error is reduced to a one-line :class:`StorageError` built from the error's code.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from config.settings import Settings
from worker.jobs.request import is_job_id
from worker.storage.local import PART_MAX_AGE, is_partial
from worker.storage.resultstore import Purged, StorageError, Stored

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MB = 1024 * 1024
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
MAX_BATCH = 1000  # the most keys one DeleteObjects or one list page takes
# An upload of the key started later than this before our own may be another worker's, live.
LIVE_UPLOAD_MARGIN = 300.0
STAGING_NAME = "akool-audio-staging"  # under the system temp dir, per user, private
RESULT_EXTENSIONS = frozenset({"mp3", "wav", "ogg", "aac", "m4a", "flac"})

#: Multipart above 8 MB in 8 MB parts, two parts in flight: the file is read from disk as it
#: is sent, so a 100 MB upload costs a few MB of memory. "classic" keeps the pure-Python
#: transfer manager even where awscrt is installed (its failure cleanup is the one we know).
TRANSFER = TransferConfig(
    multipart_threshold=8 * MB,
    multipart_chunksize=8 * MB,
    max_concurrency=2,
    use_threads=True,
    preferred_transfer_client="classic",
)

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_NO_CONDITIONS = ("NotImplemented", "501")  # a store without conditional writes: look first
_BAD_CREDENTIALS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
)
_DENIED = ("403", "AccessDenied", "Forbidden", "AllAccessDisabled")
_ELSEWHERE = ("301", "PermanentRedirect", "AuthorizationHeaderMalformed")
_UNAVAILABLE = ("500", "503", "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout")


class S3Store:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        staging_dir: Path | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.batch_size = batch_size  # keys per list page and per DeleteObjects
        self.staging_dir = (
            staging_dir or Path(tempfile.gettempdir()) / f"{STAGING_NAME}-{os.getuid()}"
        )
        _private_dir(self.staging_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        target = settings.store_target()
        if target.kind != "s3" or not target.bucket:
            raise ValueError("AUDIO_STORE does not name an S3 bucket")
        style = cast(Literal["auto", "virtual", "path"], settings.s3_addressing_style)
        config = Config(
            s3={"addressing_style": style},  # checked by Settings
            # In a Config, max_attempts counts retries: up to 4 sends of a request in all.
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=CONNECT_TIMEOUT,
            # botocore >= 1.36 adds CRC checksums to every upload by default; several
            # S3-compatible stores refuse them. Only where the operation requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            read_timeout=READ_TIMEOUT,
            signature_version="s3v4",
        )
        # A session of our own: boto3's default session is not safe to share between threads
        # while clients are being created. Credentials: its standard chain, nothing else.
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.aws_region or None,
            config=config,
        )
        return cls(client, target.bucket, target.prefix, endpoint_url=settings.s3_endpoint_url)

    # -- the ResultStore protocol ------------------------------------------------------------

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{where} at {self._host()}" if self.endpoint_url else where

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
        if not name or "/" in name or name.startswith("."):
            raise StorageError(f"refused to store {name!r}: not a plain file name")
        key = self.key(name)
        location = f"s3://{self.bucket}/{key}"
        extra = {"ContentType": content_type, "Metadata": {**metadata, "sha256": sha256}}
        if size < TRANSFER.multipart_threshold:
            try:
                uploaded = self._put_small(path, key, sha256, size, extra)
            except (HTTPClientError, BotoConnectionError) as exc:
                # Some stores answer a refused PUT, or one whose condition failed (the object
                # is there), by closing the connection before reading its body: look.
                uploaded = self._after_broken_put(exc, key, sha256, size)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise self._error(exc, path) from None
            with contextlib.suppress(OSError):
                path.unlink()
            return Stored(location, None, uploaded=uploaded)
        started = time.time()
        try:
            identical = self._holds(key, sha256, size)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from None
        if not identical:
            try:
                self.client.upload_file(
                    str(path),
                    self.bucket,
                    key,
                    ExtraArgs=extra,
                    Config=TRANSFER,
                )
            except (BotoCoreError, ClientError, Boto3Error, OSError) as exc:
                self._abort_uploads(key, before=started - LIVE_UPLOAD_MARGIN)
                raise self._error(exc, path) from None
        # What an earlier attempt could not abort itself (the store was gone then), also when
        # that attempt's object turned out to be whole after all.
        self._abort_uploads(key, before=started - LIVE_UPLOAD_MARGIN)
        with contextlib.suppress(OSError):
            path.unlink()
        return Stored(location, None, uploaded=not identical)

    def _own_key(self, location: str) -> str:
        ours = f"s3://{self.bucket}/"
        key = location.removeprefix(ours)
        if not location.startswith(ours) or not key:
            raise StorageError(f"{location!r} is not an object of {self.describe()}")
        return key

    def delete(self, location: str) -> None:
        key = self._own_key(location)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from None

    def download_url(self, location: str, ttl: int) -> str | None:
        key = self._own_key(location)
        if not 1 <= ttl <= 7 * 86400:
            raise StorageError(f"a presigned URL lasts 1 s to 7 days, not {ttl} s")
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from None

    def check(self) -> None:
        probe = self.key(f".probe-{uuid.uuid4().hex}")
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"AUDIO_STORE {self.describe()}: {self._error(exc)}") from None

    def purge(self, older_than: float, keep: Collection[str]) -> Purged:
        report = Purged()
        keep = set(keep)
        pending: list[tuple[str, int]] = []
        start = self.key("")
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=start,
                Delimiter="/",  # our names are flat: never descend into another prefix
                PaginationConfig={"PageSize": self.batch_size},
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"].removeprefix(start)
                    if not obj["Key"].startswith(start) or not is_result_name(name):
                        continue  # not one of ours (even in a bucket without a prefix)
                    if obj["LastModified"].timestamp() >= older_than:
                        continue
                    if name.rsplit(".", 1)[0] in keep:
                        continue
                    pending.append((name, obj.get("Size", 0)))
                    if len(pending) == self.batch_size:
                        self._delete(pending, report)
                        pending = []
            if pending:
                self._delete(pending, report)
            self._abort_stale_uploads(time.time() - PART_MAX_AGE)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from None
        self._purge_staging(older_than, keep, report)
        return report

    # -- helpers -----------------------------------------------------------------------------

    def key(self, name: str) -> str:
        """The object key of ``name``: ``PREFIX/<name>``, or ``<name>`` without a prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def _put_small(
        self, path: Path, key: str, sha256: str, size: int, extra: dict[str, Any]
    ) -> bool:
        """One PUT for a result under the multipart threshold: written only if no object has
        the key yet (``If-None-Match: *``). Only when one has is it looked at: the same bytes
        are not written again (False); others are replaced. A store that refuses conditions is
        asked first; one that ignores them writes the same bytes once more, which changes
        nothing."""
        with path.open("rb") as body:
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", **extra
                )
                return True
            except ClientError as exc:
                if _code(exc) not in (*_EXISTS, *_NO_CONDITIONS):
                    raise
        if self._holds(key, sha256, size):
            return False
        with path.open("rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
        return True

    def _holds(self, key: str, sha256: str, size: int) -> bool:
        """Whether the object ``key`` already has these bytes (by its sha256 metadata)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return False  # (a missing bucket answers 404 too: the upload will say which)
            raise
        return head.get("Metadata", {}).get("sha256") == sha256 and head["ContentLength"] == size

    def _abort_uploads(self, key: str, before: float) -> None:
        """Abort the incomplete multipart uploads of ``key`` started before ``before`` (epoch
        seconds): leftovers of earlier attempts, never one another worker runs now. Best
        effort (the store may be unreachable: the next put of the key, or the purge, does it)."""
        with contextlib.suppress(BotoCoreError, ClientError):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=key
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] == key and upload["Initiated"].timestamp() < before:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                        )

    def _abort_stale_uploads(self, before: float) -> None:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.key("")
        )
        start = self.key("")
        for page in pages:
            for upload in page.get("Uploads", []):
                if not is_result_name(upload["Key"].removeprefix(start)):
                    continue
                if upload["Initiated"].timestamp() < before:
                    with contextlib.suppress(ClientError):  # NoSuchUpload: it just ended
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )

    def _delete(self, batch: list[tuple[str, int]], report: Purged) -> None:
        answer = self.client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": self.key(n)} for n, _ in batch], "Quiet": True},
        )
        failed = {e.get("Key", ""): e.get("Code", "?") for e in answer.get("Errors", [])}
        for name, size in batch:
            if self.key(name) not in failed:
                report.names.append(name)
                report.bytes += size
        refused = {k: c for k, c in failed.items() if c != "NoSuchKey"}
        if refused:
            code = next(iter(refused.values()))
            raise StorageError(f"S3 refused to delete {len(refused)} objects ({code})")

    def _purge_staging(self, older_than: float, keep: Collection[str], report: Purged) -> None:
        """Partial downloads older than an hour, and staged results past retention whose job
        is not live (a put that never came back for them)."""
        now = time.time()
        try:
            with os.scandir(self.staging_dir) as entries:
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if is_partial(entry.name):
                        expired = st.st_mtime < now - PART_MAX_AGE
                    else:
                        stem = entry.name.rsplit(".", 1)[0]
                        expired = st.st_mtime < older_than and stem not in keep
                    if not expired:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        report.names.append(entry.name)
                        report.bytes += st.st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot purge {self.staging_dir}: {exc.strerror}") from None

    def _after_broken_put(self, exc: BotoCoreError, key: str, sha256: str, size: int) -> bool:
        """After a PUT whose connection broke: False when the object with these bytes is there
        (it was written, or was already); else raise why (the HEAD's refusal, or ``exc``)."""
        try:
            if self._holds(key, sha256, size):
                return False
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as refused:
            raise self._error(refused) from None
        except BotoCoreError:
            pass
        raise self._error(exc) from None

    def _host(self) -> str:
        """The endpoint's host and port, without user info or path."""
        url = urlsplit(self.endpoint_url or self.client.meta.endpoint_url)
        host = url.hostname or "?"
        return f"{host}:{url.port}" if url.port else host

    def _error(self, exc: BaseException, path: Path | None = None) -> StorageError:
        """One line saying what is wrong, from the error's type and code only (never its text
        when that may echo a request, and never a credential)."""
        if isinstance(exc, Boto3Error):  # S3UploadFailedError wraps the ClientError
            inner = exc.__cause__ or exc.__context__
            if isinstance(inner, (BotoCoreError, ClientError)):
                exc = inner
        if isinstance(exc, ClientError):
            return StorageError(self._refused(exc))
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile "
                "(AWS_PROFILE) or an instance/pod role"
            )
        if isinstance(exc, CredentialRetrievalError):
            return StorageError("the S3 credentials could not be fetched from their provider")
        host = self._host()
        if isinstance(exc, ConnectTimeoutError):
            return StorageError(f"cannot reach the S3 endpoint {host} (no answer in 5 s)")
        if isinstance(exc, ReadTimeoutError):
            return StorageError(f"the S3 endpoint {host} did not answer within {READ_TIMEOUT} s")
        if isinstance(exc, BotoConnectionError):
            return StorageError(f"cannot reach the S3 endpoint {host} ({type(exc).__name__})")
        if isinstance(exc, HTTPClientError):
            return StorageError(f"the connection to the S3 endpoint {host} broke off")
        if isinstance(exc, OSError):
            return StorageError(f"cannot read the staged file {path}: {exc.strerror}")
        return StorageError(f"S3 request failed ({type(exc).__name__})")

    def _refused(self, exc: ClientError) -> str:
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        if code == "NoSuchBucket" or (code in _NOT_FOUND and exc.operation_name == "HeadBucket"):
            return f"bucket {self.bucket!r} does not exist"
        if code in _BAD_CREDENTIALS:
            return f"access denied ({code}): check the credentials"
        if code in _DENIED:
            return (
                f"access denied to bucket {self.bucket!r} ({exc.operation_name}): check the "
                "credentials and their permissions"
            )
        if code in _ELSEWHERE:
            return f"bucket {self.bucket!r} is in another region ({code}): set AWS_REGION"
        if code == "RequestTimeTooSkewed":
            return "this host's clock is too far off for S3 to accept its signatures"
        if code in _UNAVAILABLE:
            return f"S3 is throttling or unavailable ({code}, HTTP {status})"
        return f"S3 refused {exc.operation_name} ({code}, HTTP {status})"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


def is_result_name(name: str) -> bool:
    """``<job_id>.<ext>`` as the pipeline names results: nothing else is ours to delete."""
    stem, dot, ext = name.rpartition(".")
    return bool(dot) and ext in RESULT_EXTENSIONS and is_job_id(stem)


def _private_dir(path: Path) -> None:
    """Create ``path`` for this user only, or accept it only when it is a real directory of
    this user that nobody else may use (not a link someone else planted in /tmp)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise StorageError(f"cannot create the staging directory {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise StorageError(
            f"the staging directory {path} is not a private directory of this user: remove it "
            "or set TMPDIR to another place"
        )
