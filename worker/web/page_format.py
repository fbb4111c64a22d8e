"""What the dashboard's pages show, as plain functions: ages and durations in words, each state's
tone and sign, a shortened text, and a job's timeline read from its events (worker/jobs/store.py,
``events``; README, "The timeline")."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.akool.models import AudioStatus
from worker.jobs import EventKind as E
from worker.jobs import JobState
from worker.jobs.events import event_kind

#: A state's tone (its colour in the stylesheet) and a sign beside its word, so that the state
#: never rests on colour alone.
TONES: dict[str, tuple[str, str]] = {
    JobState.ACCEPTED.value: ("wait", "○"),
    JobState.SUBMITTING.value: ("busy", "◔"),
    JobState.SUBMITTED.value: ("busy", "◑"),
    JobState.DOWNLOADING.value: ("busy", "◕"),
    JobState.STORING.value: ("warn", "◕"),
    JobState.CANCELLING.value: ("warn", "⊘"),
    JobState.SUCCEEDED.value: ("ok", "✓"),
    JobState.FAILED.value: ("bad", "✗"),
    JobState.CANCELLED.value: ("off", "⊘"),
}
STATES = tuple(s.value for s in JobState)
FINAL = tuple(s.value for s in JobState if s.is_final)
TEXT_PREVIEW = 160


def tone(state: str) -> str:
    return TONES.get(state, ("off", "?"))[0]


def sign(state: str) -> str:
    return TONES.get(state, ("off", "?"))[1]


def age(seconds: float | None) -> str:
    """``12 s``, ``4 min``, ``3 h``, ``2 d``; an em dash for None."""
    if seconds is None:
        return "—"
    s = max(0.0, seconds)
    if s < 60:
        return f"{int(s)} s"
    if s < 3600:
        return f"{int(s // 60)} min"
    if s < 86400:
        return f"{int(s // 3600)} h"
    return f"{int(s // 86400)} d"


def duration(seconds: float | None) -> str:
    """``0.8 s``, ``12.4 s``, ``3 min 05 s``, ``2 h 04 min``; an em dash for None."""
    if seconds is None:
        return "—"
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def since(t: float | None, now: float | None = None) -> str:
    """How long ago ``t`` (epoch seconds) was, as ``age``."""
    if t is None:
        return "—"
    return age((time.time() if now is None else now) - t)


def clock(t: float | None) -> str:
    """``2025-11-30 12:03:04 UTC``; an em dash for None."""
    if t is None:
        return "—"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def shortened(text: str, limit: int = TEXT_PREVIEW) -> tuple[str, bool]:
    """The first ``limit`` characters of ``text`` (cut at a word when one is near), and
    whether anything was cut."""
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…", True


def status_name(status: Any) -> str:
    """Akool's status number with its meaning: ``2 processing``."""
    try:
        return f"{int(status)} {AudioStatus(int(status)).name.lower()}"
    except (TypeError, ValueError):
        return "—" if status in (None, "") else str(status)


@dataclass(frozen=True)
class Step:
    """One line of a job's timeline: when (epoch seconds, and seconds after the first event),
    what, the detail, a tone (ok, bad, warn, busy, wait, off) and what that kind of event
    means (``EventKind.description``; empty for a kind this version does not know)."""

    t: float
    offset: float
    title: str
    detail: str
    tone: str
    about: str = ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _bytes(n: Any) -> str:
    try:
        size = float(n)
    except (TypeError, ValueError):
        return "? bytes"
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _describe(e: dict[str, Any], polls: int) -> tuple[str, str, str]:
    """(title, detail, tone) of one event; ``polls``: this poll's number."""
    kind = str(e.get("type", "?"))
    t = float(e.get("t") or 0.0)
    if kind == E.ACCEPTED:
        return "Accepted", f"recorded as a {e.get('kind', '?')} job", "wait"
    if kind == E.SUBMIT_STARTED:
        return f"Submit #{e.get('n', '?')} started", "a worker took the submit lease", "busy"
    if kind == E.SUBMITTED:
        detail = f"Akool id {e.get('akool_id', '?')}, status {status_name(e.get('status'))}"
        if e.get("orphan"):
            return "Akool answered late", detail + " (after this job had ended: an orphan)", "warn"
        return "Submitted to Akool", detail, "busy"
    if kind == E.SUBMIT_FAILED:
        detail = f"code {e.get('code', '?')}"
        if e.get("ambiguous"):
            detail += "; the outcome is unknown (Akool may have the job)"
        return "Submit failed", detail, "warn"
    if kind == E.POLL:
        planned = e.get("planned")
        if isinstance(planned, int | float):
            late = t - float(planned)
            when = f"{late:.2f} s late" if late >= 0 else f"{-late:.2f} s early"
            plan = f"planned {clock(float(planned))[11:19]}, ran {when}"
        else:
            plan = "unplanned"
        if e.get("error"):
            return f"Poll #{polls}", f"error (retried); {plan}", "warn"
        return f"Poll #{polls}", f"status {status_name(e.get('status'))}; {plan}", "busy"
    if kind == E.STATUS:
        to = e.get("to")
        change = f"{status_name(e.get('from'))} → {status_name(to)}"
        if to == int(AudioStatus.COMPLETED):
            return "Detected: Akool finished", change, "ok"
        if to == int(AudioStatus.FAILED):
            return "Akool failed the job", change, "bad"
        return "Akool status changed", change, "busy"
    if kind == E.WEBHOOK:
        return "Webhook received", f"status {status_name(e.get('status'))}", "busy"
    if kind == E.DOWNLOADED:
        took = ""
        if isinstance(e.get("started"), int | float):
            took = f" in {duration(t - float(e['started']))}"
        digest = str(e.get("sha256") or "")[:12]
        return "Downloaded", f"{_bytes(e.get('bytes'))}{took}, sha256 {digest}…", "busy"
    if kind == E.DOWNLOAD_FAILED:
        return "Download failed", f"{e.get('code', '?')}: {e.get('error', '')}", "warn"
    if kind == E.STORING_REFUSED:
        return (
            "The store refused the result",
            f"try {e.get('attempt', '?')}: {e.get('error', '')}",
            "warn",
        )
    if kind == E.STORED:
        return "Stored", f"{e.get('location', '?')} ({_bytes(e.get('bytes'))})", "ok"
    if kind == E.SUCCEEDED:
        return "Succeeded", "", "ok"
    if kind in (E.FAILED, E.ERROR):
        title = "Failed" if kind == E.FAILED else "Error while cancelling"
        return title, f"{e.get('code', '?')}: {e.get('message', '')}", "bad"
    if kind == E.NOTIFIED:
        channel = "notify_url" if e.get("channel") == "url" else "notify_task"
        detail = f"{channel}: {e.get('outcome', '?')}"
        if e.get("attempt"):
            detail += f" (attempt {e['attempt']})"
        if e.get("error"):
            detail += f"; {e['error']}"
        bad = e.get("outcome") in ("undeliverable", "retrying")
        return "Notified", detail, "warn" if bad else "ok"
    if kind == E.CANCEL_REQUESTED:
        return "Cancel asked", f"while {e.get('state', '?')}", "warn"
    if kind == E.CANCELLED:
        return "Cancelled", "", "off"
    if kind == E.RETRIED:
        return "Retried", f"runs again as attempt {e.get('attempt', '?')}", "wait"
    if kind == E.SWEPT:
        return "Restarted by the sweeper", str(e.get("action", "")), "warn"
    return _describe_clone(e, kind)


def _describe_clone(e: dict[str, Any], kind: str) -> tuple[str, str, str]:
    """The v4 clone stage's events (worker/pipeline/clonestage.py); any other kind as its
    description (or its name, for a kind this version does not know) and its fields."""
    doc = e.get("voice_doc_id") or "?"
    if kind == E.CLONE_STARTED:
        again = " (an earlier request's outcome was unknown)" if e.get("ambiguous") else ""
        return "Voice clone started", f"cloning a voice from the sample{again}", "busy"
    if kind == E.CLONE_AMBIGUOUS:
        since = e.get("since")
        when = f" (sent {clock(float(since))})" if isinstance(since, int | float) and since else ""
        return "Clone outcome unknown", f"looking for an earlier request's voice{when}", "warn"
    if kind == E.CLONE_ADOPTED:
        return "Earlier clone adopted", f"voice {doc}, being cloned", "busy"
    if kind == E.CLONED:
        return "Voice clone accepted", f"voice {doc}, status {status_name(e.get('status'))}", "busy"
    if kind == E.VOICE_POLLED:
        return "Voice polled", f"voice {doc}, status {status_name(e.get('status'))}", "busy"
    if kind == E.CLONE_FAILED:
        return "Voice clone call failed", f"{e.get('doing', '?')}: {e.get('code', '?')}", "warn"
    if kind == E.VOICE_READY:
        how = {"reused": "cloned earlier", "adopted": "adopted", "cloned": "cloned now"}
        made = how.get(str(e.get("how")), str(e.get("how", "?")))
        return "Voice ready", f"voice_id {e.get('voice_id', '?')} ({made})", "ok"
    rest = json.dumps({k: v for k, v in e.items() if k not in ("t", "type")}, sort_keys=True)
    known = event_kind(kind)
    return (known.description if known else kind), rest[:300], "off"


def timeline(events: list[dict[str, Any]]) -> list[Step]:
    """A job's events as timeline steps, oldest first; offsets count from the first event."""
    steps: list[Step] = []
    start = None
    polls = 0
    for e in events:
        t = float(e.get("t") or 0.0)
        start = t if start is None else start
        kind = str(e.get("type", "?"))
        if kind == E.POLL:
            polls += 1
        if kind == E.RETRIED:
            polls = 0
        title, detail, tone = _describe(e, polls)
        known = event_kind(kind)
        about = known.description if known else ""
        steps.append(Step(t, t - start, title, detail, tone, about))
    return steps
