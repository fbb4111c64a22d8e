"""Enqueue a file of requests (CSV or JSONL), show live progress, and summarise the outcome.

Job ids default to ``<file digest>-<line>``, so running the same file again attaches to the
same jobs instead of paying for them twice. A line's ``api`` (``v3`` or ``v4``) picks Akool's
API for that job; v4's object options (``voice_options``, ``extra_options``,
``clone_options``) are JSON objects in a JSONL line and JSON text in a CSV cell.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.jobs import Job, JobState, JobStore

#: Every state in pipeline order; a job is done once its state is final.
STATES = tuple(s.value for s in JobState)
FINAL = frozenset(s.value for s in JobState if s.is_final)
_FIELDS = (
    "input_text",
    "voice_id",
    "voice_url",
    "rate",
    "job_id",
    "notify_url",
    "notify_task",
    "notify_queue",
    "api",
    "source_voice_file",
    "voice_model_name",
    "language_code",
    "voice_options",
    "extra_options",
    "clone_options",
)
_OBJECTS = ("voice_options", "extra_options", "clone_options")


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
        sample = row.get("voice_url") or row.get("source_voice_file")
        kind = str(row.pop("kind", "") or ("clone" if sample else "create"))
        if kind not in ("create", "clone"):
            raise BatchFileError(f"{path}:{line}: kind must be create or clone, got {kind!r}")
        unknown = set(row) - set(_FIELDS)
        if unknown:
            raise BatchFileError(f"{path}:{line}: unknown column(s) {', '.join(sorted(unknown))}")
        kwargs = {k: v for k, v in row.items() if v not in (None, "")}
        for name in _OBJECTS:
            if isinstance(kwargs.get(name), str):  # a CSV cell
                try:
                    kwargs[name] = json.loads(kwargs[name])
                except json.JSONDecodeError as exc:
                    raise BatchFileError(f"{path}:{line}: {name} is not JSON ({exc.msg})") from None
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


# Each state has a colour and always its word: the colour is never the only signal.
# ("queued": sent, not yet recorded by a worker.) tests/unit/test_states_events.py checks that
# every JobState is here.
STYLES = {
    "queued": "dim",
    JobState.ACCEPTED.value: "cyan",
    JobState.SUBMITTING.value: "cyan",
    JobState.SUBMITTED.value: "blue",
    JobState.DOWNLOADING.value: "magenta",
    JobState.STORING.value: "yellow",
    JobState.CANCELLING.value: "yellow",
    JobState.SUCCEEDED.value: "green",
    JobState.FAILED.value: "bold red",
    JobState.CANCELLED.value: "bright_black",
}


def finished(c: Counter[str]) -> int:
    """How many of the counted jobs are in a final state (succeeded, failed or cancelled)."""
    return sum(n for state, n in c.items() if state in FINAL)


def states_text(c: Counter[str]) -> str:
    """``queued 2  submitted 5  succeeded 3`` in rich markup, states in pipeline order."""
    return "  ".join(f"[{STYLES[s]}]{s} {c[s]}[/]" for s in ("queued", *STATES) if c[s])


def watch(
    jobs: JobStore,
    job_ids: list[str],
    *,
    timeout: float,
    console: Console | None = None,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Show progress until every job is final; False on timeout.

    On a terminal a live bar; elsewhere (a log, a pipe) one line per change of the counts.
    """
    console = console or Console(stderr=True)
    total = len(job_ids)
    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[states]}"),
    )
    start = clock()
    last = ""
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("jobs", total=total, states="")
        while True:
            c = counts(jobs, job_ids)
            done = finished(c)
            states = states_text(c)
            progress.update(bar, completed=done, states=states)
            if not console.is_terminal and states != last:
                console.print(f"{done}/{total} {clock() - start:5.1f}s  {states}")
            last = states
            if done == total:
                return True
            if clock() - start > timeout:
                return False
            time.sleep(interval)  # ok-sleep: the CLI process, not a worker slot


@dataclass(frozen=True)
class BatchOutcome:
    records: list[Job]
    missing: int
    finished: bool

    @property
    def succeeded(self) -> list[Job]:
        return [j for j in self.records if j.state is JobState.SUCCEEDED]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.records if j.state is JobState.FAILED]

    @property
    def cancelled(self) -> list[Job]:
        return [j for j in self.records if j.state is JobState.CANCELLED]


def run(
    send: Callable[[str, dict[str, Any]], Any],
    jobs: JobStore,
    items: list[BatchItem],
    *,
    timeout: float,
    console: Console | None = None,
) -> BatchOutcome:
    """Enqueue every item with ``send(task_name, kwargs)``, watch them, collect the records."""
    for item in items:
        send(item.task, item.kwargs)
    ids = [item.kwargs["job_id"] for item in items]
    console = console or Console(stderr=True)
    console.print(f"enqueued {len(ids)} jobs")
    finished = watch(jobs, ids, timeout=timeout, console=console)
    records = [j for j in (jobs.find(i) for i in ids) if j is not None]
    return BatchOutcome(records, len(ids) - len(records), finished)


def table(jobs: list[Job]) -> Table:
    """One row per job: its id, state (coloured, and in words), size and file or error."""
    out = Table(
        "job_id",
        "state",
        "bytes",
        "file / error",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for j in jobs:
        detail = j.file or j.location or j.storage_error or ""
        if j.error_code:
            detail = f"{j.error_code}: {j.error_message}"
        state = f"[{STYLES.get(j.state.value, '')}]{j.state.value}[/]"
        out.add_row(escape(j.job_id), state, str(j.bytes or ""), escape(detail))
    return out


def show(jobs: list[Job], console: Console | None = None) -> None:
    """Print :func:`table`; off a terminal wide enough that no path is cut or folded."""
    console = console or Console()
    if not console.is_terminal:
        longest = max((len(j.file or j.error_message or "") for j in jobs), default=0)
        console.width = max(console.width, longest + 80)
    console.print(table(jobs))
