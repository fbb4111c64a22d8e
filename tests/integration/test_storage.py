"""The S3 result store against a real S3 server on loopback (moto's, in a thread), built the way
production builds it: ``open_store(Settings.from_env({...}))``. Faults come from a proxy on
loopback that cuts uploads part-way, from moto's IAM enforcement (wrong keys, no permission),
and from a closed port (an endpoint nobody answers on)."""

from __future__ import annotations

import hashlib
import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests

from config.settings import Settings
from tests.support.faultproxy import FaultProxy
from worker.storage import StorageError, Stored, open_store
from worker.storage.s3 import S3Store

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MB = 1024 * 1024
BUCKET = "results"
PREFIX = "audio"
SECRET = "wJalrXUtnFEMI-not-a-real-secret-7f3a9c"  # must never show in a message
META = {"job_id": "job-1", "akool_id": "65f8017f56559aa67f0ecde7"}
AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fake credentials for this test only; nothing reads ~/.aws or asks a metadata service.
    The system temp dir (so the store's staging dir) is the test's own. Returns it."""
    for name in AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "*")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


@pytest.fixture()
def s3(moto_url: str, aws_env: Path) -> Iterator[S3Client]:
    """A client of our own straight to moto (never through a proxy), on an empty server with
    the bucket made."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.session.Session().client("s3", endpoint_url=moto_url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    _enforce_auth(moto_url, None)


def _enforce_auth(moto_url: str, after: int | None) -> None:
    """Make moto check signatures and IAM policies after ``after`` more requests (None: never)."""
    count = "inf" if after is None else str(after)
    requests.post(f"{moto_url}/moto-api/reset-auth", data=count, timeout=10).raise_for_status()


def make_store(endpoint: str, bucket: str = BUCKET, prefix: str = PREFIX) -> S3Store:
    settings = Settings.from_env(
        {
            "AUDIO_STORE": f"s3://{bucket}/{prefix}",
            "S3_ENDPOINT_URL": endpoint,
            "S3_ADDRESSING_STYLE": "path",
        }
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    return store


def stage(store: S3Store, name: str, data: bytes) -> tuple[Path, str]:
    path = store.staging_dir / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def put(store: S3Store, path: Path, digest: str, size: int) -> Stored:
    return store.put(
        path, path.name, sha256=digest, size=size, content_type="audio/mpeg", metadata=META
    )


def record_calls(store: S3Store) -> list[str]:
    """The name of every S3 operation the store's client sends from now on (retries not
    counted twice)."""
    calls: list[str] = []

    def seen(model: Any, **_: Any) -> None:
        calls.append(model.name)

    store.client.meta.events.register("before-call.s3", seen)
    return calls


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uploads(s3: S3Client) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def keys(s3: S3Client) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


# -- 1, 2: put and download_url ----------------------------------------------------------------


@pytest.mark.parametrize("size", [48_213, 20 * MB], ids=["small", "multipart-20MB"])
def test_put_uploads_whole_once_and_links(s3: S3Client, moto_url: str, size: int) -> None:
    store = make_store(moto_url)
    assert store.describe() == f"s3://{BUCKET}/{PREFIX} at {urlsplit(moto_url).netloc}"
    data = os.urandom(size)
    path, digest = stage(store, "job-1.mp3", data)
    calls = record_calls(store)

    stored = put(store, path, digest, size)

    assert stored == Stored(f"s3://{BUCKET}/{PREFIX}/job-1.mp3", None, uploaded=True)
    assert not path.exists()
    got = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/job-1.mp3")
    body = got["Body"].read()
    assert len(body) == size and hashlib.sha256(body).hexdigest() == digest
    assert got["ContentType"] == "audio/mpeg"
    assert got["Metadata"] == {"sha256": digest, **META}
    if size >= 8 * MB:  # 8 MB parts: 8 + 8 + 4
        assert calls.count("CreateMultipartUpload") == 1 and calls.count("UploadPart") == 3
        assert calls.count("CompleteMultipartUpload") == 1 and "PutObject" not in calls
    else:  # one conditional PUT (If-None-Match: *), no HEAD first
        assert calls == ["PutObject"]
    assert uploads(s3) == []
    before = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/job-1.mp3")

    # The same bytes again (a redelivered task): nothing uploaded, the file dropped. A large
    # result is looked at first; a small one's conditional PUT is refused (412), then looked at.
    calls.clear()
    path, _ = stage(store, "job-1.mp3", data)
    again = put(store, path, digest, size)
    assert again == Stored(stored.location, None, uploaded=False)
    # (A large one also looks for a leftover upload of an earlier try to abort.)
    large = ["HeadObject", "ListMultipartUploads"]
    assert calls == (large if size >= 8 * MB else ["PutObject", "HeadObject"])
    assert not path.exists()
    after = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/job-1.mp3")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])

    # A presigned GET, fetched over plain HTTP. moto does not enforce the expiry, so only the
    # signed X-Amz-Expires is checked, not a refusal after it.
    url = store.download_url(stored.location, 600)
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["600"] and "X-Amz-Signature" in query
    assert SECRET not in url
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == digest
    for foreign in ("s3://other-bucket/audio/job-1.mp3", f"s3://{BUCKET}/", "/data/job-1.mp3"):
        with pytest.raises(StorageError, match="is not an object of"):
            store.download_url(foreign, 600)


# -- 3: a connection cut during a multipart upload ---------------------------------------------


@pytest.fixture()
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    p = FaultProxy(int(urlsplit(moto_url).port or 0)).start()
    yield p
    p.stop()


def test_cut_multipart_upload_leaves_nothing(s3: S3Client, proxy: FaultProxy) -> None:
    """Every connection is reset once it has carried 1 MB, so each 8 MB part dies on all its
    sends (botocore's ``max_attempts: 3`` in a Config means 3 retries: 4 sends), while the small
    requests (create, abort, list) pass: s3transfer's own failure cleanup aborts the upload.
    Nothing is left; healed, the same put succeeds."""
    store = make_store(proxy.url)
    data = os.urandom(20 * MB)
    path, digest = stage(store, "job-cut.mp3", data)
    proxy.cap_connections(1 * MB)

    with pytest.raises(StorageError, match=r"S3 endpoint 127\.0\.0\.1:\d+") as caught:
        put(store, path, digest, len(data))

    assert proxy.resets >= 3
    assert "\n" not in str(caught.value) and caught.value.__cause__ is None
    assert path.exists()  # still staged: the retry uploads it
    assert keys(s3) == [] and uploads(s3) == []

    proxy.heal()
    assert put(store, path, digest, len(data)).uploaded is True
    body = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/job-cut.mp3")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest
    assert uploads(s3) == []


def test_store_gone_mid_upload_is_cleaned_by_the_next_put(s3: S3Client, proxy: FaultProxy) -> None:
    """The store vanishes after 10 MB have gone out: the parts fail, and so does every abort
    (s3transfer's cleanup only logs that: futures.py _run_callback), so an incomplete upload
    stays on the server. The object never appears; the next put, healed, removes the upload."""
    store = make_store(proxy.url)
    data = os.urandom(20 * MB)
    path, digest = stage(store, "job-gone.mp3", data)
    proxy.cut_after(10 * MB)

    # (which message depends on the attempt s3transfer reports: the cut or a refusal)
    with pytest.raises(StorageError, match=r"(cannot reach|connection to) the S3 endpoint"):
        put(store, path, digest, len(data))

    assert keys(s3) == []
    assert uploads(s3) == [f"{PREFIX}/job-gone.mp3"]  # nobody could abort it
    assert path.exists()

    proxy.heal()
    assert put(store, path, digest, len(data)).uploaded is True
    assert keys(s3) == [f"{PREFIX}/job-gone.mp3"]
    assert uploads(s3) == []


# -- 4: credentials, permissions, a missing bucket ---------------------------------------------


def test_missing_bucket_is_named(s3: S3Client, moto_url: str) -> None:
    store = make_store(moto_url, bucket="no-such-bucket")
    path, digest = stage(store, "job-1.mp3", b"RIFF" * 100)
    with pytest.raises(StorageError, match=r"^bucket 'no-such-bucket' does not exist$"):
        put(store, path, digest, 400)
    assert path.exists()
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        store.check()


def test_wrong_credentials_are_named_without_the_secret(
    s3: S3Client, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Create a user allowed to read but not to write, while moto still lets 3 requests in.
    # (HEAD on a bucket needs s3:ListBucket on AWS; moto asks for an "s3:HeadBucket".)
    _enforce_auth(moto_url, 3)
    iam = boto3.session.Session().client("iam", endpoint_url=moto_url, region_name="us-east-1")
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    iam.put_user_policy(
        UserName="reader",
        PolicyName="read",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject"], "Resource": "*"}]}',
    )
    messages: list[str] = []

    def refused(store: S3Store) -> None:
        path, digest = stage(store, "job-1.mp3", b"ID3" * 100)
        for attempt in (lambda: put(store, path, digest, 300), store.check):
            with pytest.raises(StorageError) as caught:
                attempt()
            messages.append(str(caught.value))
        assert path.exists()

    # An access key moto does not know, then the reader's key with a wrong secret.
    refused(make_store(moto_url))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    refused(make_store(moto_url))
    assert all("access denied" in m and "check the credentials" in m for m in messages), messages

    # The right secret, but no right to write: HEAD passes, the upload and the probe do not.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    store = make_store(moto_url)
    path, digest = stage(store, "job-1.mp3", b"ID3" * 100)
    with pytest.raises(StorageError, match=r"access denied .*\(PutObject\)") as caught:
        put(store, path, digest, 300)
    with pytest.raises(StorageError, match=r"access denied .*\(PutObject\)") as checked:
        store.check()
    messages += [str(caught.value), str(checked.value)]

    # No credentials at all.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = make_store(moto_url)
    path, digest = stage(store, "job-1.mp3", b"ID3" * 100)
    for attempt in (
        lambda: put(store, path, digest, 300),
        store.check,
        lambda: store.download_url(f"s3://{BUCKET}/{PREFIX}/job-1.mp3", 60),
    ):
        with pytest.raises(StorageError, match="no S3 credentials: set AWS_ACCESS_KEY_ID"):
            attempt()

    for m in messages:
        assert SECRET not in m and key["SecretAccessKey"] not in m and "\n" not in m


# -- 5: S3 unreachable -------------------------------------------------------------------------


def test_unreachable_endpoint_fails_fast(s3: S3Client) -> None:
    port = closed_port()
    store = make_store(f"http://127.0.0.1:{port}")
    path, digest = stage(store, "job-1.mp3", b"x" * 1000)
    expected = rf"cannot reach the S3 endpoint 127\.0\.0\.1:{port} \(EndpointConnectionError\)"
    for attempt in (store.check, lambda: put(store, path, digest, 1000)):
        started = time.monotonic()
        with pytest.raises(StorageError, match=expected):
            attempt()
        # 3 attempts, standard-mode backoff: well under a second or two on a refused port.
        assert time.monotonic() - started < 8
    assert path.exists()


# -- 6: purge ----------------------------------------------------------------------------------


def test_purge_deletes_old_results_in_batches_and_nothing_else(s3: S3Client, moto_url: str) -> None:
    built = make_store(moto_url)
    store = S3Store(built.client, built.bucket, built.prefix, batch_size=7)
    old = [f"{PREFIX}/job-{i:02}.mp3" for i in range(20)]
    kept = [f"{PREFIX}/keep-1.mp3", f"{PREFIX}/keep.2.wav"]
    outside = [
        "job-00.mp3",  # the bucket's root
        "audio-other/job-00.mp3",  # a sibling prefix that starts with ours
        f"{PREFIX}/archive/job-00.mp3",  # a prefix below ours: not one of our names
    ]
    for key in old + kept + outside:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 100)
    # Incomplete uploads: moto dates every one 2010, so both are "stale"; only ours goes.
    s3.create_multipart_upload(Bucket=BUCKET, Key=f"{PREFIX}/job-99.mp3")
    s3.create_multipart_upload(Bucket=BUCKET, Key="audio-other/job-99.mp3")
    # S3 dates objects to the second: the cutoff is the next whole second, and the young
    # object is written after it.
    cutoff = math.floor(time.time()) + 1
    while time.time() < cutoff + 0.05:
        time.sleep(0.05)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/job-new.mp3", Body=b"x" * 100)

    staging = store.staging_dir
    stale_part, young_part = staging / ".job-a.mp3.x1.part", staging / ".job-b.mp3.x2.part"
    orphan, waiting = staging / "job-c.mp3", staging / "keep-1.mp3"
    for f in (stale_part, young_part, orphan, waiting):
        f.write_bytes(b"y" * 10)
    for f in (stale_part, orphan, waiting):
        os.utime(f, (cutoff - 7200, cutoff - 7200))

    batches: list[int] = []
    store.client.meta.events.register(
        "provide-client-params.s3.DeleteObjects",
        lambda params, **_: batches.append(len(params["Delete"]["Objects"])),
    )
    calls = record_calls(store)

    purged = store.purge(cutoff, keep={"keep-1", "keep.2", "job-new"})

    assert sorted(purged.names) == sorted(
        [k.removeprefix(f"{PREFIX}/") for k in old] + [stale_part.name, orphan.name]
    )
    assert purged.bytes == 20 * 100 + 2 * 10
    assert batches == [7, 7, 6]
    assert calls.count("ListObjectsV2") == 4  # 24 entries (23 keys, 1 common prefix) by 7
    assert keys(s3) == sorted([*kept, *outside, f"{PREFIX}/job-new.mp3"])
    assert uploads(s3) == ["audio-other/job-99.mp3"]
    assert not stale_part.exists() and not orphan.exists()
    assert young_part.exists() and waiting.exists()


def test_other_bytes_under_the_same_key_are_replaced(s3: S3Client, moto_url: str) -> None:
    # Given an object of an earlier, different result under the key (a job id reused after its
    # record expired)
    store = make_store(moto_url)
    path, digest = stage(store, "job-2.wav", b"old result")
    put(store, path, digest, 10)
    # When a new result is stored under it, the conditional PUT is refused, the object looked
    # at, and replaced
    data = os.urandom(4096)
    path, digest = stage(store, "job-2.wav", data)
    calls = record_calls(store)
    assert put(store, path, digest, len(data)).uploaded is True
    assert calls == ["PutObject", "HeadObject", "PutObject"]
    body = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/job-2.wav")["Body"].read()
    assert body == data
