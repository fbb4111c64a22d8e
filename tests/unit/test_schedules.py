"""Schedules kept in Redis as RedBeat entries (worker/maintenance/schedules.py): validation,
the plain functions against a real redis-server, and the blueprint's answers on a small Flask
app (tests/integration/test_schedules.py runs them against real beats)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab
from flask import Flask
from flask.testing import FlaskClient
from redbeat.schedulers import RedBeatSchedulerEntry

from config.beat import every as interval
from config.settings import Settings
from worker.jobs.request import InvalidRequest, parse_request
from worker.maintenance import schedules
from worker.web import jsonerrors as errors
from worker.web.schedules_api import bp

SETTINGS = Settings.from_env({})
VOICE = "piTKgcLEGmPE4e6mEKli"
GOOD: dict[str, Any] = {
    "name": "news",
    "every": 60,
    "job_id": "news-{minute}",
    "request": {"input_text": "Good morning.", "voice_id": VOICE},
}


def spec(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_a_good_spec_parses_with_the_defaults() -> None:
    job = schedules.parse_spec(spec(), SETTINGS)
    assert (job.name, job.task, job.every, job.cron) == ("news", "audio.create", 60.0, None)
    job = schedules.parse_spec(
        spec(every=None, cron=" 0  7 * * 1-5 ", task="audio.clone"), SETTINGS
    )
    assert (job.cron, job.every, job.task) == ("0 7 * * 1-5", None, "audio.clone")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"nmae": "x"}, "nmae", "unknown field(s) nmae; allowed: cron, every, job_id, name"),
        ({"name": None}, "name", "name must be 1-64 letters"),
        ({"name": "a/b"}, "name", "name must be 1-64 letters"),
        ({"name": "x" * 65}, "name", "name must be 1-64 letters"),
        ({"name": 7}, "name", "name must be 1-64 letters"),
        ({"every": None}, "cron", "give exactly one of cron or every"),
        ({"cron": "* * * * *"}, "cron", "give exactly one of cron or every"),
        ({"every": "60"}, "every", "every must be a number of seconds, got '60'"),
        ({"every": True}, "every", "every must be a number of seconds"),
        ({"every": 0}, "every", "every must be 10 to 31622400 seconds"),
        ({"every": 9.9}, "every", "at least twice BEAT_MAX_LOOP_INTERVAL"),
        ({"every": float("nan")}, "every", "got nan"),
        ({"every": float("inf")}, "every", "got inf"),
        ({"every": 1e300}, "every", "every must be 10 to"),
        ({"every": None, "cron": "0 7 * *"}, "cron", "must have 5 fields"),
        ({"every": None, "cron": "61 * * * *"}, "cron", "bad cron '61 * * * *'"),
        ({"every": None, "cron": "0 7 * 13 *"}, "cron", "bad cron"),
        ({"every": None, "cron": ["0", "7"]}, "cron", "cron must be a string, got list"),
        ({"task": "audio.poll"}, "task", "task must be one of audio.create, audio.clone"),
        ({"task": ["audio.create"]}, "task", "task must be one of"),
        ({"request": None}, "request", "request must be an object"),
        ({"request": "hello"}, "request", "request must be an object"),
        ({"request": {**GOOD["request"], "job_id": "x"}}, "request.job_id", "not in request"),
        ({"job_id": None}, "job_id", "job_id must be a template"),
        ({"job_id": 5}, "job_id", "job_id must be a template"),
        ({"job_id": "x-{day}"}, "job_id", "job_id may use {name}, {date}, {hour}, {minute}, {ts}"),
        ({"job_id": "x-{}"}, "job_id", "job_id may use"),
        ({"job_id": "x-{date.year}"}, "job_id", "job_id may use"),
        ({"job_id": "x-{date"}, "job_id", "job_id is not a valid template"),
        ({"job_id": "x-{ts!x}"}, "job_id", "job_id is not a valid template"),
        ({"job_id": "../{date}"}, "job_id", "must be 1-128 characters"),
        ({"job_id": "{date}" * 13}, "job_id", "must be 1-128 characters"),
    ],
)
def test_a_bad_spec_names_its_field(changes: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(schedules.InvalidSchedule) as got:
        schedules.parse_spec({**GOOD, **changes}, SETTINGS)
    assert got.value.field == field
    assert message in got.value.message


@pytest.mark.parametrize(
    "request_",
    [
        {"voice_id": VOICE},
        {"input_text": "Hi.", "voice_id": VOICE, "voiceId": "x"},
        {"input_text": 5, "voice_id": VOICE},
        {"input_text": "Hi.", "voice_id": VOICE, "rate": "300%"},
        {"input_text": "Hi.", "voice_id": VOICE, "notify_url": "ftp://x"},
        {"input_text": "Hi.", "voice_id": VOICE, "notify_url": "http://10.0.0.1/h"},
    ],
)
def test_the_request_is_checked_as_a_job_is_with_the_same_messages(request_: Any) -> None:
    with pytest.raises(InvalidRequest) as job:
        parse_request("create", request_, SETTINGS)
    with pytest.raises(schedules.InvalidSchedule) as sched:
        schedules.parse_spec(spec(request=request_), SETTINGS)
    assert sched.value.field == f"request.{job.value.field}"
    assert sched.value.message == str(job.value)


def test_a_clone_request_is_checked_as_audio_clone() -> None:
    request = {"input_text": "Hi.", "voice_url": "https://example.com/v.mp3"}
    assert schedules.parse_spec(spec(task="audio.clone", request=request), SETTINGS)
    with pytest.raises(schedules.InvalidSchedule, match="voice_url"):
        schedules.parse_spec(spec(request=request), SETTINGS)  # audio.create has no voice_url


def test_the_shortest_interval_follows_the_beat_loop() -> None:
    fast = Settings.from_env({"BEAT_MAX_LOOP_INTERVAL": "0.5", "BEAT_LOCK_TIMEOUT": "3"})
    assert schedules.parse_spec(spec(every=1), fast).every == 1.0
    with pytest.raises(schedules.InvalidSchedule, match="every must be 1 to"):
        schedules.parse_spec(spec(every=0.9), fast)


def test_cron_fields_are_read_in_the_usual_order() -> None:
    # minute hour day-of-month month day-of-week; crontab's positional order differs.
    c = schedules.cron_schedule("0 7 1 * 1")
    assert c.day_of_month == {1} and c.day_of_week == {1} and len(c.month_of_year) == 12
    c = schedules.cron_schedule("30 6 * 2 *")
    assert c.month_of_year == {2} and len(c.day_of_week) == 7


# The plain functions against a real redis-server.


@pytest.fixture()
def app(redis_url: str) -> Celery:
    return schedules.beat_app(Settings.from_env({"REDIS_URL": redis_url}))


def beat_saves(app: Celery, name: str, task: str, sched: Any, **kwargs: Any) -> None:
    """An entry of the beat configuration, stored as RedBeat's scheduler stores it."""
    RedBeatSchedulerEntry(name, task, sched, app=app, **kwargs).save()


def file_and_maintenance_entries(app: Celery) -> None:
    beat_saves(
        app,
        "recurring:tick",
        "maintenance.recurring",
        interval(5),
        kwargs={"name": "tick", "task": "audio.create", "request": {"x": 1}, "job_id": "t-{ts}"},
        options={"queue": "audio"},
    )
    beat_saves(app, "sweep", "maintenance.sweep", interval(60), options={"queue": "audio"})


def test_add_get_list_remove(app: Celery) -> None:
    before = datetime.now(UTC)
    made = schedules.add(app, SETTINGS, spec(every=30))
    after = datetime.now(UTC)
    assert made.source == "api" and made.entry == "schedule:news"
    assert made.request == GOOD["request"] and made.job_id == "news-{minute}"
    assert made.task == "audio.create" and made.every == 30.0 and made.cron is None
    assert made.last_run_at is None and made.runs == 0
    assert made.next_run_at is not None
    # First run one interval after it was added (Celery's beat semantics).
    assert before + timedelta(seconds=30) <= made.next_run_at <= after + timedelta(seconds=30)
    assert schedules.get(app, "news") == made
    assert [s.name for s in schedules.list_all(app)] == ["news"]
    # Stored exactly as recurring.beat_entries builds a file's entry.
    entry = RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, made.entry), app)
    assert entry.task == "maintenance.recurring" and entry.options == {"queue": "audio"}
    assert entry.kwargs == {
        "name": "news",
        "task": "audio.create",
        "request": GOOD["request"],
        "job_id": "news-{minute}",
    }
    assert schedules.remove(app, "news") == made
    with pytest.raises(schedules.ScheduleNotFound, match="no schedule named 'news'"):
        schedules.get(app, "news")
    with pytest.raises(schedules.ScheduleNotFound):
        schedules.remove(app, "news")
    assert schedules.list_all(app) == []


def test_a_cron_schedule_shows_its_expression_and_next_match(app: Celery) -> None:
    made = schedules.add(app, SETTINGS, spec(every=None, cron="15 3 * * *"))
    assert made.cron == "15 3 * * *" and made.every is None
    assert made.next_run_at is not None
    nxt = made.next_run_at.astimezone(UTC)
    assert (nxt.hour, nxt.minute, nxt.second) == (3, 15, 0)
    assert timedelta(0) < nxt - datetime.now(UTC) <= timedelta(days=1)
    assert isinstance(
        RedBeatSchedulerEntry.from_key(
            RedBeatSchedulerEntry.generate_key(app, made.entry), app
        ).schedule,
        crontab,
    )


def test_file_and_maintenance_entries_are_listed_and_kept(app: Celery) -> None:
    file_and_maintenance_entries(app)
    schedules.add(app, SETTINGS, spec())
    listed = {s.name: s for s in schedules.list_all(app)}
    assert [(s.name, s.source) for s in schedules.list_all(app)] == [
        ("news", "api"),
        ("tick", "file"),
        ("sweep", "maintenance"),
    ]
    assert listed["tick"].task == "audio.create" and listed["tick"].job_id == "t-{ts}"
    assert listed["sweep"].task == "maintenance.sweep" and listed["sweep"].request is None
    assert listed["sweep"].every == 60.0
    with pytest.raises(schedules.NotRemovable, match="RECURRING_JOBS_FILE"):
        schedules.remove(app, "tick")
    with pytest.raises(schedules.NotRemovable, match="beat configuration"):
        schedules.remove(app, "sweep")
    assert {s.name for s in schedules.list_all(app)} == {"news", "tick", "sweep"}


@pytest.mark.parametrize(
    ("name", "source"), [("news", "api"), ("tick", "file"), ("sweep", "maintenance")]
)
def test_a_taken_name_is_refused_whatever_its_source(app: Celery, name: str, source: str) -> None:
    file_and_maintenance_entries(app)
    schedules.add(app, SETTINGS, spec())
    with pytest.raises(schedules.ScheduleExists, match=f"exists already \\(source {source}\\)"):
        schedules.add(app, SETTINGS, spec(name=name, every=99))
    assert schedules.get(app, name).every != 99


def test_two_adds_of_one_name_at_once_make_one_schedule(app: Celery) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def one(i: int) -> None:
        start.wait()
        try:
            schedules.add(app, SETTINGS, spec(every=10 + i))
            outcomes.append("made")
        except schedules.ScheduleExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["exists"] * 7 + ["made"]


def test_a_run_shows_as_last_run_and_a_leftover_of_a_delete_is_ignored(
    app: Celery, redis_url: str
) -> None:
    made = schedules.add(app, SETTINGS, spec(every=30))
    key = RedBeatSchedulerEntry.generate_key(app, made.entry)
    # What beat does when it fires the entry (reserve -> next): run time and count in meta.
    entry = RedBeatSchedulerEntry.from_key(key, app)
    fired = next(entry)
    got = schedules.get(app, "news")
    assert got.runs == 1 and got.last_run_at == fired.last_run_at
    assert got.next_run_at is not None and got.next_run_at > got.last_run_at
    schedules.remove(app, "news")
    # A beat tick that raced the delete writes the meta back (RedBeat's _next_instance).
    next(entry)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget(key, "meta") and not r.hget(key, "definition")
    assert schedules.list_all(app) == []
    with pytest.raises(schedules.ScheduleNotFound):
        schedules.get(app, "news")
    # The name can be used again, without the old run time.
    again = schedules.add(app, SETTINGS, spec(every=30))
    assert again.runs == 0 and again.last_run_at is None


def test_an_entry_that_never_ran_is_due_now(app: Celery) -> None:
    RedBeatSchedulerEntry("purge", "maintenance.purge", interval(3600), app=app).save()
    key = RedBeatSchedulerEntry.generate_key(app, "purge")
    redis.Redis.from_url(app.conf.redbeat_redis_url).hset(key, "meta", '{"last_run_at": null}')
    before = datetime.now(UTC)
    got = schedules.get(app, "purge")
    assert got.next_run_at is not None and got.last_run_at is None
    assert before <= got.next_run_at <= datetime.now(UTC)


def test_redis_down_is_a_redis_error() -> None:
    app = schedules.beat_app(Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    with pytest.raises(redis.RedisError):
        schedules.list_all(app)


# The blueprint on a small Flask app (the service's app factory adds token checks).


@pytest.fixture()
def client(redis_url: str) -> Iterator[FlaskClient]:
    web = Flask("test")
    web.config["SETTINGS"] = Settings.from_env({"REDIS_URL": redis_url})
    errors.install(web)
    web.register_blueprint(bp)
    with web.test_client() as c:
        yield c


def test_the_routes(client: FlaskClient, app: Celery) -> None:
    file_and_maintenance_entries(app)
    made = client.post("/v1/schedules", json=spec())
    assert made.status_code == 201, made.json
    assert made.headers["Location"] == "/v1/schedules/news"
    assert made.json is not None and made.json["source"] == "api"
    assert made.json["last_run_at"] is None
    assert datetime.fromisoformat(made.json["next_run_at"]).tzinfo is not None
    listed = client.get("/v1/schedules").json
    assert listed is not None
    assert [(s["name"], s["source"]) for s in listed["schedules"]] == [
        ("news", "api"),
        ("tick", "file"),
        ("sweep", "maintenance"),
    ]
    assert client.get("/v1/schedules/news").json == made.json
    again = client.post("/v1/schedules", json=spec())
    assert again.status_code == 409
    assert again.json == {
        "error": {
            "code": "conflict",
            "field": "name",
            "message": "a schedule named 'news' exists already (source api); remove it first "
            "or pick another name",
        }
    }
    tick = client.delete("/v1/schedules/tick")
    assert tick.status_code == 409 and "RECURRING_JOBS_FILE" in tick.get_json()["error"]["message"]
    sweep = client.delete("/v1/schedules/sweep")
    assert sweep.status_code == 409 and "beat configuration" in sweep.get_json()["error"]["message"]
    gone = client.delete("/v1/schedules/news")
    assert gone.status_code == 200 and gone.json == {"deleted": made.json}
    assert client.get("/v1/schedules/news").status_code == 404
    missing = client.delete("/v1/schedules/news")
    assert missing.status_code == 404
    assert missing.json == {
        "error": {"code": "not_found", "field": "name", "message": "no schedule named 'news'"}
    }


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        (b"not json", 400, None, "the body is not JSON"),
        (b'{"name": "x"', 400, None, "the body is not JSON"),
        (b"[" * 10_000 + b"]" * 10_000, 400, None, "the body is not JSON"),
        (b"[1, 2]", 400, None, "the body must be a JSON object"),
        (b"null", 400, None, "the body must be a JSON object"),
        (b'{"name": "x", "every": 60, "oops": 1}', 400, "oops", "unknown field(s) oops"),
        (b'{"name": "x", "every": NaN}', 400, None, "the body is not JSON"),
        (b'{"name": "x", "every": 1e999}', 400, "every", "every must be 10 to"),
        (b'{"name": "x", "every": 60, "job_id": "x", "request": {}}', 400, "request.input_text",
         "input_text"),
        (b'{"x": "' + b"a" * 70_000 + b'"}', 413, None, "larger than 64 KB"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused_with_a_message_and_nothing_stored(
    client: FlaskClient, app: Celery, body: bytes, status: int, field: str | None, message: str
) -> None:
    got = client.post("/v1/schedules", data=body, content_type="application/json")
    assert got.status_code == status
    assert got.json is not None and message in got.json["error"]["message"]
    assert got.json["error"].get("field") == field
    assert schedules.list_all(app) == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"notify_task": "my.task"}, "request.notify_task"),
        ({"notify_queue": "celery"}, "request.notify_queue"),
        ({"notify_task": "my.task", "notify_queue": "other"}, "request.notify_queue"),
    ],
)
def test_celery_only_options_are_refused_over_http_as_post_v1_jobs_refuses_them(
    client: FlaskClient, app: Celery, options: dict[str, str], field: str
) -> None:
    """A schedule's request would make a worker send any task name to any queue of the broker
    each time beat fires it: the same refusal as ``POST /v1/jobs``."""
    got = client.post("/v1/schedules", json=spec(request={**GOOD["request"], **options}))
    assert got.status_code == 400
    assert got.json is not None and got.json["error"]["field"] == field
    assert "over HTTP use notify_url" in got.json["error"]["message"]
    assert schedules.list_all(app) == []
    # The command line (an operator who holds the broker's address anyway) may still set them.
    made = schedules.add(app, SETTINGS, spec(request={**GOOD["request"], **options}), trusted=True)
    assert made.request is not None and options.items() <= made.request.items()


def test_a_body_that_is_not_sent_as_json_is_refused(client: FlaskClient, app: Celery) -> None:
    got = client.post("/v1/schedules", data=json.dumps(spec()), content_type="text/plain")
    assert got.status_code == 415
    assert got.json == {
        "error": {
            "code": "unsupported_media_type",
            "message": "send JSON with Content-Type: application/json",
        }
    }
    assert schedules.list_all(app) == []


@pytest.mark.parametrize("name", ["..", "a.b", "x" * 65, "%2e%2e%2fetc", "a%00b"])
def test_bad_names_in_the_path_are_refused(client: FlaskClient, name: str) -> None:
    for method in ("get", "delete"):
        got = getattr(client, method)(f"/v1/schedules/{name}")
        assert got.status_code in (400, 404), (method, name, got.status_code)
        assert got.json is not None and got.json["error"]["message"]


def test_time_is_reported_in_utc(app: Celery) -> None:
    before = time.time()
    made = schedules.add(app, SETTINGS, spec())
    after = time.time()
    shown = made.to_json()["next_run_at"]
    assert shown.endswith("+00:00")
    assert int(before) + 60 <= datetime.fromisoformat(shown).timestamp() <= after + 60


def test_a_file_entrys_cron_fields_keep_their_meaning(tmp_path: Any) -> None:
    """``0 7 * * 1`` is Mondays at 07:00, not every day in January (crontab's positional
    order is minute, hour, day-of-week, day-of-month, month)."""
    from worker.maintenance import recurring

    path = tmp_path / "recurring.yaml"
    path.write_text(
        json.dumps(
            {
                "jobs": [
                    {
                        "name": "monday",
                        "cron": "0 7 * * 1",
                        "job_id": "monday-{date}",
                        "request": GOOD["request"],
                    }
                ]
            }
        )
    )
    entries = recurring.beat_entries(Settings(recurring_jobs_file=path))
    sched = entries["recurring:monday"]["schedule"]
    assert isinstance(sched, crontab)
    assert sched.day_of_week == {1}
    assert sched.month_of_year == set(range(1, 13))
    assert sched.hour == {7}
