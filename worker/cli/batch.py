"""Enqueue a file of requests (CSV or JSONL), show live progress, and summarise the outcome.

Job ids default to ``<file digest>-<line>``, so running the same file again attaches to the
same jobs instead of paying for them twice.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from worker.jobs import Job, JobStore

STATES = ("accepted", "submitting", "submitted", "downloading", "succeeded", "failed")
_FIELDS = (
    "input_text",
    "voice_id",
    "voice_url",
    "rate",
    "job_id",
    "notify_url",
    "notify_task",
    "notify_queue",
)


class BatchFileError(ValueError):
    """Raised when a batch file cannot be read; the message names the line."""


@dataclass(frozen=True)
class BatchItem:
    line: int
    task: str
    kwargs: dict[str, Any]


def load(path: Path) -> list[BatchItem]:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:10]
    text = raw.decode("utf-8-sig")
    rows: Iterable[tuple[int, dict[str, Any]]]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = _jsonl(text)
    elif path.suffix.lower() == ".csv":
        rows = ((i + 2, dict(r)) for i, r in enumerate(csv.DictReader(text.splitlines())))
    else:
        raise BatchFileError(f"{path}: use a .csv or .jsonl file")
    items = []
    for line, row in rows:
        kind = str(row.pop("kind", "") or ("clone" if row.get("voice_url") else "create"))
        if kind not in ("create", "clone"):
            raise BatchFileError(f"{path}:{line}: kind must be create or clone, got {kind!r}")
        unknown = set(row) - set(_FIELDS)
        if unknown:
            raise BatchFileError(f"{path}:{line}: unknown column(s) {', '.join(sorted(unknown))}")
        kwargs = {k: v for k, v in row.items() if v not in (None, "")}
        kwargs.setdefault("job_id", f"batch-{digest}-{line}")
        items.append(BatchItem(line, f"audio.{kind}", kwargs))
    if not items:
        raise BatchFileError(f"{path}: no requests found")
    return items


def _jsonl(text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchFileError(f"line {n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BatchFileError(f"line {n}: each line must be a JSON object")
        yield n, row


def counts(jobs: JobStore, job_ids: list[str]) -> Counter[str]:
    return Counter(state or "queued" for state in jobs.states(job_ids))


def progress_line(c: Counter[str], total: int, elapsed: float, width: int = 30) -> str:
    done = c["succeeded"] + c["failed"]
    filled = int(width * done / total) if total else width
    parts = [f"{s} {c[s]}" for s in ("queued", *STATES) if c[s]]
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:5.1f}s  " + "  ".join(
        parts
    )


def watch(
    jobs: JobStore,
    job_ids: list[str],
    *,
    timeout: float,
    out: TextIO = sys.stderr,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Show progress until every job is final; False on timeout."""
    start = clock()
    tty = out.isatty()
    last = ""
    while True:
        c = counts(jobs, job_ids)
        line = progress_line(c, len(job_ids), clock() - start)
        finished = c["succeeded"] + c["failed"] == len(job_ids)
        if tty:
            out.write("\r" + line.ljust(len(last)))
        elif line.split("  ", 1)[-1] != last.split("  ", 1)[-1] or finished:
            out.write(line + "\n")
        out.flush()
        last = line
        if finished:
            break
        if clock() - start > timeout:
            out.write("\n" if tty else "")
            return False
        time.sleep(interval)  # ok-sleep: the CLI process, not a worker slot
    if tty:
        out.write("\n")
    return True


@dataclass(frozen=True)
class BatchOutcome:
    records: list[Job]
    missing: int
    finished: bool

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.records if j.state.value == "failed"]


def run(
    send: Callable[[str, dict[str, Any]], Any],
    jobs: JobStore,
    items: list[BatchItem],
    *,
    timeout: float,
    out: TextIO = sys.stderr,
) -> BatchOutcome:
    """Enqueue every item with ``send(task_name, kwargs)``, watch them, collect the records."""
    for item in items:
        send(item.task, item.kwargs)
    ids = [item.kwargs["job_id"] for item in items]
    out.write(f"enqueued {len(ids)} jobs\n")
    finished = watch(jobs, ids, timeout=timeout, out=out)
    records = [j for j in (jobs.find(i) for i in ids) if j is not None]
    return BatchOutcome(records, len(ids) - len(records), finished)


def table(jobs: list[Job]) -> str:
    rows = [("job_id", "state", "bytes", "file / error")]
    for j in jobs:
        detail = j.file or (f"{j.error_code}: {j.error_message}" if j.error_code else "")
        rows.append((j.job_id, j.state.value, str(j.bytes or ""), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.insert(1, "-" * min(120, max(len(x) for x in lines)))
    return "\n".join(lines)
