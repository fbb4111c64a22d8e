"""Contract tests of the Celery and kombu internals we rely on (worker/broker/compat.py): every
private name exists with the signature we call it with, the library still calls the hooks we
override, and the message envelope Celery and kombu produce with our settings is the one
worker/lua/dispatch_due.lua and reliable_fetch.lua read and edit. An upgrade that changes any
of them fails here, not in production."""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, Task, chain
from celery.app import trace
from celery.app.amqp import AMQP
from celery.app.task import Context
from celery.exceptions import Reject
from celery.signals import before_task_publish
from kombu.transport import redis as kombu_redis

from config.celeryconfig import QUEUE_POLL, celery_config
from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.broker import compat
from worker.broker.redact import RedactingAMQP
from worker.fleet import counters
from worker.jobs import JobStore
from worker.jobs.parking import Parked


def _owner(spec: str) -> type:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _assigned_in(cls: type, name: str) -> bool:
    """``self.<name> =`` in the source of ``cls`` or one of its bases (an instance attribute)."""
    for base in cls.__mro__:
        if base.__module__.split(".")[0] in ("kombu", "celery"):
            try:
                if f"self.{name} =" in inspect.getsource(base):
                    return True
            except (OSError, TypeError):
                continue
    return False


@pytest.mark.parametrize(
    ("owner", "name"), [(o, n) for o, names in compat.PRIVATE.items() for n in names]
)
def test_every_private_name_we_use_exists(owner: str, name: str) -> None:
    cls = _owner(owner)
    assert hasattr(cls, name) or _assigned_in(cls, name), f"{owner} has no {name}"


# The parameters we call (or override) each private method with.
SIGNATURES = {
    (kombu_redis.Channel, "_put"): ["self", "queue", "message", "kwargs"],
    (kombu_redis.Channel, "_brpop_start"): ["self", "timeout"],
    (kombu_redis.Channel, "_brpop_read"): ["self", "options"],
    (kombu_redis.Channel, "_q_for_pri"): ["self", "queue", "pri"],
    (kombu_redis.Channel, "_get_message_priority"): ["self", "message", "reverse"],
    (kombu_redis.Channel, "_create_client"): ["self", "asynchronous"],
    (kombu_redis.Channel, "_flush_brpop_reauth"): ["self"],
    (kombu_redis.QoS, "_remove_from_indices"): ["self", "delivery_tag", "pipe"],
    (kombu_redis.Transport, "_deliver"): ["self", "message", "queue"],
    (kombu_redis.SentinelChannel, "_sentinel_managed_pool"): ["self", "asynchronous"],
    (kombu_redis.SentinelChannel, "_connparams"): ["self", "asynchronous"],
    (kombu_redis.QoS, "restore_by_tag"): ["self", "tag", "client", "leftmost"],
    (kombu_redis.QoS, "append"): ["self", "message", "delivery_tag"],
    (AMQP, "as_task_v2"): ["self", "task_id", "name", "args", "kwargs"],
    (Task, "on_replace"): ["self", "sig"],
}


@pytest.mark.parametrize(("cls", "name"), list(SIGNATURES))
def test_private_methods_keep_the_signature_we_rely_on(cls: type, name: str) -> None:
    method = getattr(cls, name)
    assert callable(method)
    params = list(inspect.signature(method).parameters)
    want = SIGNATURES[(cls, name)]
    assert params[: len(want)] == want, f"{cls.__name__}.{name}{inspect.signature(method)}"


def test_kombu_still_calls_the_hooks_we_override() -> None:
    # The event loop starts a fetch with _brpop_start and reads it with the handler of BRPOP,
    # bound to _brpop_read when the channel is made; a publish ends in _put.
    assert "channel._brpop_start()" in inspect.getsource(kombu_redis.MultiChannelPoller)
    assert "'BRPOP': self._brpop_read" in inspect.getsource(kombu_redis.Channel.__init__)
    assert "self._put(" in inspect.getsource(kombu_redis.Channel.basic_publish)
    redis_qos = inspect.getsource(kombu_redis.QoS)
    assert "self._remove_from_indices(" in redis_qos  # ack and reject go through it
    # The attributes our transport reads, besides the private ones.
    for name in ("unacked_key", "unacked_index_key", "global_keyprefix", "priority_steps", "sep"):
        assert hasattr(kombu_redis.Channel, name), name
    assert "ack_emulation" in kombu_redis.Channel.from_transport_options


def test_celery_reads_the_request_fields_end_chain_writes() -> None:
    # The trace reads chain and callbacks of the request after the task returned, and whether
    # to store a result from its ignore_result: end_chain's three fields.
    tracer = inspect.getsource(trace.build_tracer)
    assert "task_request.callbacks" in tracer
    assert "task_request.chain" in tracer
    request = Context(ignore_result=False)
    compat.end_chain(request)
    assert trace.get_actual_ignore_result(Task(), request) is True
    assert "self.on_replace(" in inspect.getsource(Task.replace)
    assert Reject("x", requeue=True).requeue is True


def test_end_chain_clears_the_chain_and_the_result() -> None:
    class Request:
        chain: Any = [{"task": "next"}]
        callbacks: Any = [{"task": "cb"}]
        ignore_result = False

    request = Request()
    compat.end_chain(request)
    assert (request.chain, request.callbacks, request.ignore_result) == (None, None, True)


# -- the envelope, with our settings, on a real Redis ------------------------------------------


@pytest.fixture()
def app(redis_url: str) -> Iterator[Celery]:
    app = Celery("contract", amqp=RedactingAMQP)
    app.conf.update(celery_config(Settings(redis_url=redis_url)))
    # Under its own uid: disconnecting it must not remove worker/celery.py's receiver, which
    # later tests of this process rely on (a queue's oldest-message age).
    before_task_publish.connect(counters.stamp_sent_at, weak=False, dispatch_uid="contract")
    yield app
    before_task_publish.disconnect(dispatch_uid="contract")
    app.close()


def _poll_chain(app: Celery, job_id: str) -> Any:
    """The message a parked poll keeps: poll, then download under the entry task's id
    (tasks/chains.py builds it from the record; this is its shape)."""
    poll = app.signature("audio.poll", args=(job_id,), immutable=True).set(queue=QUEUE_POLL)
    last = app.signature("audio.download", args=(job_id,), immutable=True).set(task_id="entry-1")
    return chain(poll, last)


def test_the_envelope_we_park_is_the_one_the_scripts_read(app: Celery) -> None:
    key, payload = compat.capture_lpush(_poll_chain(app, "job-1").apply_async)
    assert key == QUEUE_POLL
    message = json.loads(payload)
    assert set(message) == {"body", "content-encoding", "content-type", "headers", "properties"}
    assert message["content-type"] == "application/json"
    assert message["content-encoding"] == "utf-8"
    props = message["properties"]
    assert props["body_encoding"] == "base64"
    assert props["delivery_info"] == {"exchange": "", "routing_key": QUEUE_POLL}
    assert props["priority"] == 0
    assert isinstance(props["delivery_tag"], str) and "." not in props["delivery_tag"]
    assert compat.delivery_tag(payload) == props["delivery_tag"]
    headers = message["headers"]
    assert headers["task"] == "audio.poll"
    assert isinstance(headers["sent_at"], float)
    assert headers["argsrepr"] == "['job-1']"
    args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == (["job-1"], {})
    assert [s["task"] for s in embed["chain"]] == ["audio.download"]
    assert embed["chain"][0]["options"]["task_id"] == "entry-1"
    compat.check_cjson_safe(payload)  # the rest survives dispatch_due.lua's cjson


def _parked_and_dispatched(redis_url: str, payload: str, times: int = 1) -> list[str]:
    """Park ``payload`` as a job's kept poll message and dispatch it ``times`` times: what
    reached the queue, oldest first."""
    s = Settings(redis_url=redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    jobs = JobStore(r, s)
    jobs.create("c-1", "create", {"input_text": "hi", "voice_id": "v"}, "t")
    assert jobs.begin_submit("c-1", 30) == "go"
    jobs.record_submitted("c-1", "ak-1", AudioStatus(2), None, time.time())
    assert jobs.parking.park("c-1", time.time() - 1, "q-contract", payload) is Parked.PARKED
    for i in range(times):
        if i:
            assert jobs.parking.park("c-1", time.time() - 1) is Parked.PARKED
        assert jobs.parking.dispatch_due(10, 1000.0, 2.0, "poll", "none")[0] == 1
    return [str(m) for m in reversed(r.lrange("q-contract", 0, -1))]


def test_cjson_keeps_the_envelope_but_the_fields_it_rewrites(app: Celery, redis_url: str) -> None:
    _, payload = compat.capture_lpush(_poll_chain(app, "job-1").apply_async)
    before = json.loads(payload)
    pushed = [json.loads(p) for p in _parked_and_dispatched(redis_url, payload, times=2)]
    for n, after in enumerate(pushed, start=1):
        assert after["body"] == before["body"]  # the base64 body, byte for byte
        tag = before["properties"]["delivery_tag"]
        assert after["properties"] == {**before["properties"], "delivery_tag": f"{tag}.{n}"}
        assert after["headers"]["sent_at"] > before["headers"]["sent_at"]
        del after["headers"]["sent_at"]
        assert after["headers"] == {k: v for k, v in before["headers"].items() if k != "sent_at"}
        assert {k: after[k] for k in ("content-type", "content-encoding")} == {
            k: before[k] for k in ("content-type", "content-encoding")
        }


def test_what_cjson_would_change_is_refused_before_parking(redis_url: str) -> None:
    # Redis's cjson (7.0 has no decode_array_with_array_mt) writes [] as {} and numbers with
    # 14 digits: shown on the real script, and refused by check_cjson_safe.
    raw = json.dumps({"headers": {"sent_at": 1.0, "x": [], "n": 123456789012345}, "properties": {}})
    (pushed,) = _parked_and_dispatched(redis_url, raw)
    assert json.loads(pushed)["headers"]["x"] == {}
    assert json.loads(pushed)["headers"]["n"] != 123456789012345
    with pytest.raises(compat.EnvelopeError, match="empty list"):
        compat.check_cjson_safe(json.dumps({"headers": {"x": []}}))
    with pytest.raises(compat.EnvelopeError, match="digits"):
        compat.check_cjson_safe(json.dumps({"headers": {"n": 123456789012345}}))
    # The fields the script rewrites and the body are not checked; stamps {} is fine.
    compat.check_cjson_safe(
        json.dumps({"body": "[]", "headers": {"sent_at": time.time(), "stamps": {}}})
    )


def test_a_payload_that_is_not_json_is_pushed_as_it_is(redis_url: str) -> None:
    assert _parked_and_dispatched(redis_url, "not json {") == ["not json {"]


def test_no_module_but_compat_names_a_private_celery_or_kombu_attribute() -> None:
    # Given every private name compat.PRIVATE lists
    names = {name for owned in compat.PRIVATE.values() for name in owned}
    root = Path(__file__).resolve().parents[2]
    used: dict[str, set[str]] = {}
    for top in ("worker", "tasks", "config"):
        for path in (root / top).rglob("*.py"):
            tree = ast.parse(path.read_text())
            found = {
                node.attr
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr in names
            }
            found |= {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name in names
            }
            if found:
                used[path.relative_to(root).as_posix()] = found
    # Then compat.py uses them (the scan sees them) and nothing else does
    assert len(used.pop("worker/broker/compat.py", set())) >= 10
    assert used == {}
