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

from worker.jobs import JobStore

PART_MAX_AGE = 3600.0


@dataclass
class PurgeReport:
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    records: list[str] = field(default_factory=list)
    index: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "files": len(self.files),
            "bytes": self.bytes,
            "records": len(self.records),
            "index": len(self.index),
        }


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


def purge(
    jobs: JobStore, audio_dir: Path, record_days: float, file_days: float, now: float | None = None
) -> PurgeReport:
    now = time.time() if now is None else now
    report = PurgeReport()
    report.index, live = jobs.prune_index()
    report.records = list(jobs.purge_records(now - record_days * 86400))
    purge_files(audio_dir, now - file_days * 86400, live, report)
    return report
