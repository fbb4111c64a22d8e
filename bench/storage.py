"""(8) A result uploaded to S3 by our store, ``open_store(...).put(...)``, beside a plain boto3
``upload_file`` of the same bytes with boto3's defaults, for a 1 MB and a 100 MB file of random
bytes. The S3 server is moto's, on loopback, in a process of its own (its memory is not the
uploader's). Every upload runs in a fresh Python process whose peak RSS (VmHWM) is read just
before and just after it, once imports and the client are done: the growth is what the upload
itself costs, and its time is that of a first upload (a new connection). Each path runs
``RUNS`` times, the paths interleaved; seconds are the best of the runs (the machine is shared,
and other work only ever adds time), RSS growth the largest. The full run adds two variants of
our store that are not shipped, to show what its settings cost: boto3's ``max_concurrency``
of 10, and no HEAD before the upload (nor the ListMultipartUploads after one)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.stack import ROOT
from worker.devstack.s3server import MotoServer

MB = 2**20
SIZES_MB = (1, 100)
RUNS = 3
BUCKET = "bench-results"
PREFIX = "audio"
RSS_TARGET_MB = 20  # for a 100 MB result, our path
RATIO_TARGET = 0.9  # our MB/s / boto3's
#: ours: the store as shipped; baseline: ``boto3.client("s3").upload_file``, boto3's defaults.
PATHS = ("ours", "baseline")
#: Not shipped, full run only: ours with boto3's default concurrency; ours without its checks.
VARIANTS = ("ours_c10", "ours_no_head")

# One upload in a fresh process. argv: mode, endpoint, then the bucket to create (mode
# "bucket") or the file, its sha256 and the object's name. Prints the figures and the transfer
# settings used as one JSON line. The object is checked, then deleted so that the server's
# memory does not grow from run to run.
PROBE = """
import json, os, sys, time
from pathlib import Path

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

mode, endpoint = sys.argv[1], sys.argv[2]
import boto3
from boto3.s3 import transfer
if mode == "bucket":
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=sys.argv[3])
    raise SystemExit(0)
path, digest, name = Path(sys.argv[3]), sys.argv[4], sys.argv[5]
bucket, prefix = BUCKET, PREFIX
size = path.stat().st_size
if mode == "baseline":
    client = boto3.client("s3", endpoint_url=endpoint)
    key = f"{prefix}/{name}"
    config = transfer.TransferConfig()  # what upload_file uses when given none
    def upload():
        client.upload_file(str(path), bucket, key)
else:
    from config.settings import Settings
    from worker.storage import open_store
    import worker.storage.s3 as s3
    store = open_store(Settings.from_env({
        "AUDIO_STORE": f"s3://{bucket}/{prefix}",
        "S3_ENDPOINT_URL": endpoint,
        "S3_ADDRESSING_STYLE": "path",
    }))
    client, key, config = store.client, store.key(name), s3.TRANSFER
    if mode == "ours_c10":
        config.max_concurrency = 10  # boto3's default, in this process only
    elif mode == "ours_no_head":
        assert callable(store._holds) and callable(store._abort_uploads)
        store._holds = lambda *args: False
        store._abort_uploads = lambda *args, **kwargs: None
    else:
        assert mode == "ours", mode
    meta = {"job_id": "bench", "akool_id": "0" * 24}
    def upload():
        store.put(path, name, sha256=digest, size=size, content_type="audio/mpeg", metadata=meta)
crt = transfer.HAS_CRT and config.preferred_transfer_client != "classic"
settings = (
    f"multipart above {config.multipart_threshold >> 20} MB in "
    f"{config.multipart_chunksize >> 20} MB parts, max_concurrency "
    f"{config.max_request_concurrency}, {'CRT' if crt else 'classic'} transfer manager"
)
before = hwm()
t = time.perf_counter()
upload()
secs = time.perf_counter() - t
growth = hwm() - before
head = client.head_object(Bucket=bucket, Key=key)
assert head["ContentLength"] == size, (head["ContentLength"], size)
client.delete_object(Bucket=bucket, Key=key)
print(json.dumps({"bytes": size, "seconds": secs, "hwm_growth": growth, "settings": settings}))
""".replace("BUCKET, PREFIX", f"{BUCKET!r}, {PREFIX!r}")


def run(quick: bool) -> dict[str, Any]:
    paths = PATHS if quick else PATHS + VARIANTS
    out: dict[str, Any] = {"runs": RUNS, "seconds": f"best of {RUNS}", "rss": f"largest of {RUNS}"}
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        work = Path(tmp)
        env = _env(work)
        server = MotoServer(env, work / "moto.log").start()
        try:
            endpoint = server.url
            _probe(env, "bucket", endpoint, BUCKET)
            for mb in SIZES_MB:
                out[f"{mb}mb"] = _measure(env, endpoint, work, mb, paths)
        finally:
            server.stop()
    out["moto"] = _version("moto")
    out["boto3"] = _version("boto3")
    big = out[f"{SIZES_MB[-1]}mb"]["ours"]["peak_rss_growth_mb"]
    out["rss_target"] = "met" if big <= RSS_TARGET_MB else "missed"
    return out


def _measure(
    env: dict[str, str], endpoint: str, work: Path, mb: int, paths: tuple[str, ...]
) -> dict[str, Any]:
    """Every path ``RUNS`` times from one file, interleaved (the order reversed every round)."""
    src = work / f"random-{mb}mb.bin"
    with src.open("wb") as f:
        for _ in range(mb):
            f.write(os.urandom(MB))
    with src.open("rb") as r:
        digest = hashlib.file_digest(r, "sha256").hexdigest()
    staging = work / "akool-audio-staging"  # the store's, as TMPDIR is ``work``
    staging.mkdir(mode=0o700, exist_ok=True)
    seen: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for i in range(RUNS):
        for p in paths if i % 2 == 0 else paths[::-1]:
            name = f"bench-{mb}mb-{p}-{i}.mp3"
            if p == "baseline":
                seen[p].append(_probe(env, p, endpoint, str(src), digest, name))
                continue
            staged = staging / name  # put moves its file away: a staged copy, as downloaded
            shutil.copyfile(src, staged)
            seen[p].append(_probe(env, p, endpoint, str(staged), digest, name))
            staged.unlink(missing_ok=True)
    src.unlink()
    result: dict[str, Any] = {"mb": mb}
    for p, figs in seen.items():
        secs = sorted(f["seconds"] for f in figs)
        result[p] = {
            "seconds": round(secs[0], 3),
            "mb_per_s": round(mb / secs[0], 1),
            "peak_rss_growth_mb": round(max(f["hwm_growth"] for f in figs) / MB, 2),
            "median_seconds": round(secs[len(secs) // 2], 3),
            "all_seconds": [round(f["seconds"], 3) for f in figs],
            "settings": figs[0]["settings"],
        }
    for p in paths:
        if p != "baseline":
            ratio = result[p]["mb_per_s"] / result["baseline"]["mb_per_s"]
            result[p]["ratio"] = round(ratio, 2)
    result["ratio"] = result["ours"]["ratio"]
    return result


def _probe(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"storage probe {args[0]} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def _env(work: Path) -> dict[str, str]:
    """This environment without the shell's AWS settings, proxies or store settings; fake
    credentials, no config files and no metadata service; the system temp dir (so the store's
    staging dir) is ``work``. Only the processes started here get it."""
    drop = ("AWS_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "AUDIO_", "S3_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "bench-not-a-real-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(work / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(ROOT),
            "TMPDIR": str(work),
        }
    )
    return env


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
