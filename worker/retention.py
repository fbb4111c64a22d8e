"""Purge what is past its retention: audio files, final job records, stale index entries.

- Files in ``AUDIO_DIR`` older than ``AUDIO_RETENTION_DAYS`` (by mtime), except a file of a job
  that is still active, and partial downloads (``.*.part``) older than an hour.
- Final job records older than ``JOB_RETENTION_DAYS`` that carry no TTL (final records normally
  get an EXPIRE when they end; this catches records written before that, or restored without it).
- Ids in the active index whose record has vanished or is final.

Every worker host that keeps its own ``AUDIO_DIR`` needs its own purge (see docs/OPERATIONS.md):
this task purges the directory of the worker that runs it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from worker.jobs import JobState, JobStore

PART_MAX_AGE = 3600.0
_FINAL = {JobState.SUCCEEDED.value, JobState.FAILED.value}


@dataclass
class PurgeReport:
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    records: list[str] = field(default_factory=list)
    index: list[str] = field(default_factory=list)


def purge_files(audio_dir: Path, older_than: float, active: set[str], report: PurgeReport) -> None:
    if not audio_dir.is_dir():
        return
    now = time.time()
    with os.scandir(audio_dir) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            if name.startswith(".") and name.endswith(".part"):
                expired = st.st_mtime < now - PART_MAX_AGE
            else:
                expired = st.st_mtime < older_than and name.rsplit(".", 1)[0] not in active
            if expired:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue  # another worker sharing the directory got there first
                report.files.append(name)
                report.bytes += st.st_size


def purge_records(jobs: JobStore, older_than: float, report: PurgeReport) -> None:
    pattern = jobs.job_key("*")
    for key in jobs.r.scan_iter(match=pattern, count=500):
        if jobs.r.ttl(key) != -1:  # has a TTL (or vanished): Redis will expire it
            continue
        state, completed = cast(list[str | None], jobs.r.hmget(key, ["state", "completed_at"]))
        if state in _FINAL and completed and float(completed) < older_than:
            jobs.r.delete(key)
            report.records.append(str(key).rsplit(":", 1)[1])


def prune_index(jobs: JobStore, report: PurgeReport) -> set[str]:
    """Drop ids of vanished or finished records from the active index; returns the live ids.

    A final job that no finisher has claimed yet stays: the sweeper still has to finish it.
    """
    live: set[str] = set()
    ids = [str(i) for i in cast(list[str], jobs.r.zrange(jobs.active_key, 0, -1))]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with jobs.r.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hmget(jobs.job_key(job_id), ["state", "finished_at"])
            rows = pipe.execute()
        for job_id, (state, finished) in zip(chunk, rows, strict=True):
            if state is None or (state in _FINAL and finished):
                jobs.r.zrem(jobs.active_key, job_id)
                report.index.append(job_id)
            else:
                live.add(job_id)
    return live


def purge(
    jobs: JobStore, audio_dir: Path, record_days: float, file_days: float, now: float | None = None
) -> PurgeReport:
    now = time.time() if now is None else now
    report = PurgeReport()
    live = prune_index(jobs, report)
    purge_records(jobs, now - record_days * 86400, report)
    purge_files(audio_dir, now - file_days * 86400, live, report)
    return report
