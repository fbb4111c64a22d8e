"""Seed job records that wait for Akool with their next poll parked, without sending a job:
``python -m bench.parked --start K --count N --due-in S`` against the Redis of ``REDIS_URL``
(run with a worker's environment, bench.stack.Stack.env).

Each job goes through the scripts a real job runs, with their keys and arguments, pipelined in
batches of ``BATCH``: ``JobStore.create`` (``job_create.lua``), ``begin_submit``,
``record_submitted`` (an Akool id of our own, status 2, processing) and ``Parking.park``
(``job_park.lua``) with the message ``tasks.chains.park`` would park, captured from kombu as
``capture_lpush`` does (worker/broker/compat.py; the job's continuation, built from its
record as read back).
So each record carries its listing indexes, timeline, active-index entry and Akool-id map, and
its parked poll is the one a worker would have parked. Prints one JSON line:
``{"seeded": N, "seconds": s}``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any, cast

import redis

from bench.jobs import VOICE, text_of
from bench.stack import ROOT
from config.settings import Settings, get_settings
from worker.jobs import Job, JobStore
from worker.jobs.record import request_fingerprint
from worker.jobs.request import parse_request
from worker.lua import job_script

BATCH = 1000


def job_ids(start: int, count: int) -> list[str]:
    """The seeded jobs' ids: ``parked-`` and the index, so runs can add more."""
    return [f"parked-{i:08d}" for i in range(start, start + count)]


def seed(r: redis.Redis, settings: Settings, ids: list[str], due: float) -> None:
    """Record ``ids`` as submitted jobs whose next poll is parked until ``due``."""
    from tasks.chains import continuation  # the worker's Celery app: imported with its env
    from worker.broker.compat import capture_lpush

    store = JobStore(r, settings)  # for its key names only
    script = r.register_script
    create, begin = script(job_script("job_create")), script(job_script("job_begin_submit"))
    submitted, park = script(job_script("job_submitted")), script(job_script("job_park"))
    request = parse_request("create", {"input_text": text_of(12, random.Random(2)),
                                       "voice_id": VOICE}, settings).to_record()  # fmt: skip
    doc, fingerprint = json.dumps(request, sort_keys=True), request_fingerprint("create", request)
    retention = max(1, int(settings.job_retention_days * 86400))
    for at in range(0, len(ids), BATCH):
        part = ids[at : at + BATCH]
        now = time.time()
        pipe = r.pipeline(transaction=False)
        for job_id in part:
            keys = store.keys.script(job_id)
            akool_id = "bench" + job_id
            create(keys=keys, args=[job_id, "create", doc, fingerprint, now, str(uuid.uuid4()),
                                    now + settings.poll_deadline], client=pipe)  # fmt: skip
            begin(keys=keys, args=[job_id, now, 60, retention], client=pipe)
            submitted(keys=[*keys, store.akool_key(akool_id)],
                      args=[job_id, akool_id, 2, "", now, due, retention, retention],
                      client=pipe)  # fmt: skip
            pipe.hgetall(store.job_key(job_id))
        rows = pipe.execute()[3::4]
        pipe = r.pipeline(transaction=False)
        for job_id, h in zip(part, rows, strict=True):
            job = Job.from_hash(cast(dict[str, str], h))
            queue, message = capture_lpush(continuation(job, 0.0).apply_async)
            keys = store.keys.script(job_id, store.parking.parked_key,
                                     store.parking.parked_messages_key)  # fmt: skip
            park(keys=keys, args=[job_id, due, queue, message, "submitted"], client=pipe)
        parked = pipe.execute()
        if not all(parked):
            raise RuntimeError(f"{parked.count(0)} of {len(part)} jobs were not parked")


def run(env: Mapping[str, str], start: int, count: int, due_in: float) -> dict[str, Any]:
    """Seed ``count`` parked jobs from ``start`` in a process with the worker's ``env``."""
    args = [sys.executable, "-m", "bench.parked", "--start", str(start), "--count", str(count),
            "--due-in", str(due_in)]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.parked", description=__doc__)
    p.add_argument("--start", type=int, default=0, help="the first job's index")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--due-in", type=float, required=True, help="seconds from now (< 0: due)")
    args = p.parse_args(argv)
    settings = get_settings()
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    t0 = time.time()
    seed(r, settings, job_ids(args.start, args.count), t0 + args.due_in)
    out: dict[str, Any] = {"seeded": args.count, "seconds": round(time.time() - t0, 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
