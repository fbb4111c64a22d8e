"""The sandbox's pure layers without sockets: config, faults, lifecycle on a fake clock, audio."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, OFFICIAL_VOICE_IDS, SandboxConfig
from sandbox.audio import AudioSpec
from sandbox.errors import ErrorAnswer
from sandbox.faults import FaultInjector, FaultRule
from sandbox.lifecycle import Webhook
from sandbox.state import SandboxState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeScheduler:
    def __init__(self) -> None:
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        self.calls.append((when, fn))

    def run_due(self, now: float) -> None:
        due = [c for c in self.calls if c[0] <= now]
        self.calls = [c for c in self.calls if c[0] > now]
        for _, fn in due:
            fn()


def make_state(**config: Any) -> tuple[SandboxState, FakeClock, FakeScheduler, list[Webhook]]:
    clock, scheduler = FakeClock(), FakeScheduler()
    sent: list[Webhook] = []
    state = SandboxState(
        SandboxConfig.from_dict(config),
        api_key=DEFAULT_API_KEY,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_API_KEY,
        scheduler=scheduler,
        notify=sent.append,
        base_url="http://sb",
        clock=clock,
    )
    return state, clock, scheduler, sent


def body(text: str = "one two three", **extra: Any) -> dict[str, Any]:
    return {"input_text": text, "voice_id": OFFICIAL_VOICE_IDS[0], "rate": "100%", **extra}


# -- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"bogus": 1}, "bogus"),
        ({"lifecycle": {"mode": "soon"}}, "mode"),
        ({"lifecycle": {"polls": 0}}, "polls"),
        ({"lifecycle": {"jitter": 1.5}}, "jitter"),
        ({"lifecycle": {"speed": 1}}, "speed"),
        ({"lifecycle": "fast"}, "lifecycle"),
        ({"faults": {"kind": "drop"}}, "faults"),
        ({"faults": [{"kind": "nope"}]}, "kind"),
        ({"faults": [{"kind": "slow"}]}, "delay"),
        ({"faults": [{"kind": "code"}]}, "code"),
        ({"faults": [{"kind": "drop", "endpoint": "upload"}]}, "endpoint"),
        ({"faults": [{"kind": "drop", "probability": 2}]}, "probability"),
        ({"faults": [{"kind": "drop", "times": -1}]}, "times"),
        ({"faults": [{"kind": "drop", "extra": 1}]}, "extra"),
        ({"faults": [{"kind": "http_500_html", "http_status": 200}]}, "http_status"),
        ({"webhook_retry_delays": [1, -1]}, "webhook_retry_delays"),
        ({"audio_bytes": 10}, "audio_bytes"),
        ({"seed": "x"}, "seed"),
        ({"revoke_tokens": "yes"}, "revoke_tokens"),
    ],
)
def test_bad_config_is_rejected_with_the_field_named(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SandboxConfig().merged(fields)


def test_config_merges_lifecycle_key_by_key_and_round_trips() -> None:
    cfg = SandboxConfig().merged({"lifecycle": {"mode": "polls"}, "seed": 3})
    cfg = cfg.merged({"lifecycle": {"polls": 5}})
    assert (cfg.lifecycle.mode, cfg.lifecycle.polls, cfg.seed) == ("polls", 5, 3)
    assert SandboxConfig.from_dict(cfg.to_dict()) == cfg


# -- faults -------------------------------------------------------------------------------------


def rules(*raw: dict[str, Any]) -> tuple[FaultRule, ...]:
    return tuple(FaultRule.from_dict(r, i) for i, r in enumerate(raw))


def test_times_counts_down_only_on_matching_endpoints() -> None:
    inj = FaultInjector(rules({"endpoint": "create", "kind": "drop", "times": 2}))
    assert inj.decide("detail").error is None
    assert [inj.decide("create").error is not None for _ in range(3)] == [True, True, False]


def test_slow_adds_up_then_first_error_wins_and_marks_wait_for_no_error() -> None:
    inj = FaultInjector(
        rules(
            {"kind": "slow", "delay": 0.5},
            {"kind": "slow", "delay": 0.25},
            {"kind": "code", "code": 1201, "times": 1},
            {"kind": "drop", "times": 1},
            {"endpoint": "create", "kind": "status_4", "times": 1},
        )
    )
    first = inj.decide("create")
    assert first.delay == 0.75 and first.error is not None and first.error.kind == "code"
    assert first.marks == set()
    second = inj.decide("create")
    assert second.error is not None and second.error.kind == "drop"
    third = inj.decide("create")
    assert third.error is None and third.marks == {"status_4"}
    assert inj.remaining() == [None, None, 0, 0, 0]


def test_marks_are_not_consumed_where_they_mean_nothing() -> None:
    inj = FaultInjector(rules({"kind": "status_4", "times": 1}))
    assert inj.decide("token").marks == set() and inj.decide("download").marks == set()
    assert inj.decide("detail").marks == {"status_4"}


def test_probability_follows_the_seed() -> None:
    def draw(seed: int) -> list[bool]:
        inj = FaultInjector(rules({"kind": "drop", "probability": 0.3}), seed=seed)
        return [inj.decide("voices").error is not None for _ in range(200)]

    assert draw(1) == draw(1) != draw(2)
    assert 30 < sum(draw(1)) < 90


# -- lifecycle and webhooks on a fake clock -----------------------------------------------------


def test_duration_walks_1_2_3_and_sends_webhooks_at_the_edges() -> None:
    state, clock, scheduler, sent = make_state(
        lifecycle={"base_seconds": 10, "per_word_seconds": 1, "jitter": 0}
    )
    rec = state.create_job("create", body(webhookUrl="http://hook"), set())
    view = state.job_view(rec["_id"])
    assert view["completed_at"] == clock.now + 13
    assert rec["status"] == 1 and sent == []

    clock.now += 1.3  # 10 % of 13 s
    scheduler.run_due(clock.now)
    assert state.job_view(rec["_id"])["status"] == 2
    assert [h.status for h in sent] == [2]

    clock.now += 11.7
    scheduler.run_due(clock.now)
    assert [h.status for h in sent] == [2, 3]
    assert sent[1].payload() == {
        "_id": rec["_id"],
        "status": 3,
        "type": "audio",
        "url": f"http://sb/files/{rec['_id']}.wav",
    }
    assert state.detail(rec["_id"], set())["status"] == 3
    assert len(sent) == 2  # a poll after the edge does not resend


@pytest.mark.parametrize(
    ("polls", "statuses"),
    [(1, [3, 3]), (2, [2, 3]), (3, [1, 2, 3]), (5, [1, 1, 2, 2, 3])],
)
def test_polls_mode_table(polls: int, statuses: list[int]) -> None:
    state, *_ = make_state(lifecycle={"mode": "polls", "polls": polls})
    job_id = state.create_job("create", body(), set())["_id"]
    seen = [state.detail(job_id, set())["status"] for _ in statuses]
    assert seen == statuses


def test_immediate_fail_marker_and_status_4_mark() -> None:
    state, _, _, sent = make_state(lifecycle={"mode": "immediate"})
    failed = state.create_job("create", body("a [[fail]] b", webhookUrl="http://h"), set())
    assert failed["status"] == 4 and "url" not in failed
    assert [h.status for h in sent] == [2, 4]
    marked = state.create_job("create", body(), {"status_4"})
    assert marked["status"] == 4
    assert state.file(marked["_id"]) is None


@pytest.mark.parametrize(
    ("endpoint", "changes"),
    [
        ("create", {"input_text": "   "}),
        ("create", {"rate": "100"}),
        ("create", {"rate": "-1%"}),
        ("create", {"voice_id": 7}),
        ("create", {"webhookUrl": "mailto:x"}),
        ("clone", {"voice_id": None, "rate": "100%"}),
    ],
)
def test_validation_raises_1003(endpoint: str, changes: dict[str, Any]) -> None:
    state, *_ = make_state()
    with pytest.raises(ErrorAnswer) as err:
        state.create_job(endpoint, {**body(), **changes}, set())
    assert err.value.code == 1003
    assert state.stats()["submissions"] == 0


def test_tokens_expire_and_revoke() -> None:
    state, clock, *_ = make_state(token_ttl_seconds=60)
    token = state.issue_token({"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_API_KEY})
    state.authenticate(f"Bearer {token}", None)
    clock.now += 61
    with pytest.raises(ErrorAnswer) as err:
        state.authenticate(f"Bearer {token}", DEFAULT_API_KEY)
    assert err.value.code == 1101
    token = state.issue_token({"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_API_KEY})
    state.configure({"revoke_tokens": True})
    with pytest.raises(ErrorAnswer):
        state.authenticate(f"bearer {token}", None)


# -- audio --------------------------------------------------------------------------------------


def test_audio_is_deterministic_valid_and_sized() -> None:
    a = AudioSpec.for_text("id1", "some words here")
    assert a.render() == AudioSpec.for_text("id1", "some words here").render()
    assert a.render() != AudioSpec.for_text("id2", "some words here").render()
    with wave.open(io.BytesIO(a.render())) as w:
        assert w.getnframes() * 2 + 44 == a.size
    assert AudioSpec.for_text("x", "w " * 5000).size < 1_000_000
    assert AudioSpec.for_text("x", "", 1001).size == 1000  # rounded down to whole samples
    assert len(AudioSpec.for_text("x", "y", 1_000_044).render()) == 1_000_044
