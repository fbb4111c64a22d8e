"""Purge what is past its retention: stored results, final job records, stale index entries.

- Results older than ``AUDIO_RETENTION_DAYS`` in the result store (files of a local
  ``AUDIO_STORE``, objects under an S3 prefix and nothing outside it), except those of a job
  that is still active, and partial downloads older than an hour.
- Final job records older than ``JOB_RETENTION_DAYS`` that carry no TTL (final records normally
  get an EXPIRE when they end; this catches records written before that, or restored without it).
- Ids in the active index whose record has vanished or is final, and the listing entries
  (``worker/jobs/listing.py``) of records that have expired.

A local store is per host: every worker host that keeps its own directory needs its own purge
(see docs/OPERATIONS.md). An object store is shared, and one purge covers the fleet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from worker.jobs import JobStore
from worker.storage import ResultStore


@dataclass
class PurgeReport:
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    records: list[str] = field(default_factory=list)
    index: list[str] = field(default_factory=list)
    listing: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "files": len(self.files),
            "bytes": self.bytes,
            "records": len(self.records),
            "index": len(self.index),
            "listing": self.listing,
        }


def purge(
    jobs: JobStore,
    store: ResultStore,
    record_days: float,
    file_days: float,
    now: float | None = None,
) -> PurgeReport:
    now = time.time() if now is None else now
    report = PurgeReport()
    report.index, live = jobs.pruning.prune_index()
    report.records = list(jobs.pruning.purge_records(now - record_days * 86400))
    report.listing = jobs.pruning.prune_listing(now - record_days * 86400)
    purged = store.purge(now - file_days * 86400, live)
    report.files, report.bytes = purged.names, purged.bytes
    return report
