"""Which timeline events an event stream has still to send (worker/web/follow.py ``unsent``),
below and at the timeline's cap of EVENTS_MAX events."""

from __future__ import annotations

from typing import Any

from worker.jobs.timeline import EVENTS_MAX
from worker.web.follow import unsent


def timeline(first: int, last: int) -> list[dict[str, Any]]:
    """Events numbered first..last (as written), the newest EVENTS_MAX of them kept."""
    return [{"t": float(n), "type": "poll"} for n in range(first, last + 1)][-EVENTS_MAX:]


def test_below_the_cap_ids_are_indexes() -> None:
    events = timeline(0, 9)
    assert unsent(events, -1, None) == events
    assert unsent(events, 3, events[3]) == events[4:]
    assert unsent(events, 3, None) == events[4:]  # a resume after id 3
    assert unsent(events, 9, events[9]) == []


def test_at_the_cap_a_stream_finds_its_place_by_the_last_event_it_sent() -> None:
    before = timeline(0, 199)  # full: 200 events
    after = timeline(0, 204)  # five more written, the five oldest dropped
    assert len(after) == EVENTS_MAX and after[0]["t"] == 5.0
    assert unsent(after, 199, before[199]) == timeline(200, 204)
    # more than the cap written since its last read: it sends what is kept
    assert unsent(timeline(0, 500), 199, before[199]) == timeline(301, 500)


def test_a_resume_on_a_full_timeline_reads_ids_as_indexes_of_what_is_kept() -> None:
    full = timeline(0, 260)
    assert unsent(full, 189, None) == full[190:]
    assert unsent(full, 199, None) == []
    assert unsent(full, 250, None) == []
