"""Celery configuration built from :class:`config.settings.Settings`.

Choices and their reasons (see also docs/OPERATIONS.md):
- JSON only, so any backend in any language can enqueue by task name.
- Late acks: a worker killed mid-task loses nothing; the message is redelivered.
  ``task_reject_on_worker_lost`` re-queues a task whose prefork child died; tasks are
  idempotent against the job record, so a redelivery does no harm.
- The visibility timeout is set in all three places Celery reads it, well above the longest
  countdown (``POLL_MAX_DELAY``) plus a task's time limit plus kombu's ~100 s restore sweep.
- Three queues: ``audio`` (entry, download, finish), ``poll`` and ``notify``, so slow
  notification endpoints cannot starve polling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any

from kombu.entity import Queue

from config.redisconn import redis_target
from config.settings import Settings

QUEUE_AUDIO = "audio"
QUEUE_POLL = "poll"
QUEUE_NOTIFY = "notify"
QUEUES = (QUEUE_AUDIO, QUEUE_POLL, QUEUE_NOTIFY)


# Seconds a synchronous Redis command (an ack, a publish, storing a result) may wait for its
# answer. Without it a worker whose connections went silent (a NAT or load balancer forgot
# them, a failover moved the address) waits forever and never reconnects. Far above any
# normal answer; the fetch itself waits at most 1 s server-side (worker/broker/reliable_redis.py).
REDIS_SOCKET_TIMEOUT = 20.0
REDIS_CONNECT_TIMEOUT = 5.0


#: Seconds between redis-py's PINGs on a connection idle that long: a connection a failover
#: or a NAT silently dropped is found and made again before it is used.
REDIS_HEALTH_CHECK_INTERVAL = 25
#: Our reliable-fetch transport, and its Sentinel variant (worker/broker/).
TRANSPORT = "worker.broker.reliable_redis:Transport"
SENTINEL_TRANSPORT = "worker.broker.sentinel_redis:Transport"


def redis_config(settings: Settings) -> dict[str, Any]:
    """Where the broker, the result backend and RedBeat find Redis, each in its own library's
    spelling of the same REDIS_URL, TLS files, ACL user and Sentinels (config/redisconn.py);
    its transport options are merged into the others by :func:`celery_config`.

    Sentinel. kombu's Sentinel channel reads the Sentinels from the broker URL's failover list
    (``;``), but on a connection error kombu moves to the next URL of that list and takes its
    scheme as the transport: our reliable transport would silently become kombu's plain
    Sentinel transport. So the broker URL names one Sentinel and the transport option
    ``sentinels`` all of them (worker/broker/sentinel_redis.py asks each in turn, and redis-py
    skips one that is down: celery#5538). The result backend takes the whole list; RedBeat
    takes them as ``sentinels`` and spells the master ``service_name``.
    """
    target = redis_target(settings)
    tls = target.tls_options()
    if not target.is_sentinel:
        return {
            "broker_url": settings.redis_url,
            "broker_transport": TRANSPORT,
            "result_backend": settings.redis_url,
            "redbeat_redis_url": settings.redis_url,
            "redbeat_redis_options": {
                "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL,
                "socket_timeout": 10,
            },
            **(
                {"broker_use_ssl": tls, "redis_backend_use_ssl": tls, "redbeat_redis_use_ssl": tls}
                if tls
                else {}
            ),
            "broker_transport_options": {},
            "result_backend_transport_options": {},
        }
    sentinels = [list(s) for s in target.sentinels]
    sentinel_kwargs = target.sentinel_kwargs()
    sentinel_options = {"master_name": target.master, "sentinel_kwargs": sentinel_kwargs}
    redbeat: dict[str, Any] = {
        "sentinels": [tuple(s) for s in target.sentinels],
        "service_name": target.master,
        "db": target.db,
        "socket_timeout": 10,
        "sentinel_kwargs": sentinel_kwargs,
        # beat rides out a failover: retries a lost connection this long (RedBeat's tenacity).
        "retry_period": 60,
    }
    if target.password:
        redbeat["password"] = target.password
    if target.username:
        redbeat["username"] = target.username
    return {
        "broker_url": target.sentinel_url(*target.sentinels[0]),
        "broker_transport": SENTINEL_TRANSPORT,
        "result_backend": ";".join(target.sentinel_url(h, p) for h, p in target.sentinels),
        "redbeat_redis_url": "redis-sentinel://",
        "redbeat_redis_options": redbeat,
        "broker_transport_options": {**sentinel_options, "sentinels": sentinels},
        "result_backend_transport_options": sentinel_options,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    redis = redis_config(settings)
    transport = {
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "visibility_timeout": settings.visibility_timeout,
        # kombu >= 5.7: how often unacked messages of dead workers are looked for.
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 2,
        # worker/broker/reliable_redis.py: pop and record as unacked in one step (False: BRPOP).
        "reliable_fetch": settings.reliable_fetch,
        "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL,
        **redis.pop("broker_transport_options"),
    }
    backend_transport = redis.pop("result_backend_transport_options")
    return {
        # broker_url, broker_transport (kombu's Redis transport, but a message that is not JSON
        # is dropped and logged instead of stopping the worker: worker/broker/reliable_redis.py),
        # result_backend, TLS options, RedBeat's URL and options: redis_config above.
        **redis,
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            **backend_transport,
        },
        "redis_backend_health_check_interval": REDIS_HEALTH_CHECK_INTERVAL,
        # A result written while Redis fails over (or restarts) is retried with backoff, about
        # 10 s in all, instead of failing the task that produced it.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "redis_socket_timeout": REDIS_SOCKET_TIMEOUT,
        "redis_socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "redis_socket_keepalive": True,
        "redis_retry_on_timeout": True,
        "visibility_timeout": settings.visibility_timeout,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": settings.result_expires,
        "result_extended": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # STARTED is written only for the entry tasks (audio.create/clone: callers may look at
        # it); for the internal steps it was a result write per task that nobody read. Flower's
        # "started" comes from the worker's task-started event, not from this.
        "task_track_started": False,
        "task_time_limit": settings.task_time_limit,
        # 30 s to clean up, but never more than a fifth of the limit: a flat "- 30" gave
        # every TASK_TIME_LIMIT <= 31 a soft limit of 1 s.
        "task_soft_time_limit": settings.task_time_limit - min(30, settings.task_time_limit // 5),
        "task_default_queue": QUEUE_AUDIO,
        "task_queues": [Queue(name) for name in QUEUES],  # type: ignore[no-untyped-call]
        "task_routes": {
            "audio.poll": {"queue": QUEUE_POLL},
            "audio.deliver": {"queue": QUEUE_NOTIFY},
        },
        "task_create_missing_queues": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,  # Flower: received, started, succeeded, retried
        # No task-sent event (a PUBLISH per message): Flower lists a task once a worker has it;
        # what waits in a queue is on /v1/stats and the dashboard.
        "task_send_sent_event": False,
        # Polls are most of the tasks and the cheapest: without their events a poll costs
        # about a tenth less CPU (bench/pollcost.py). POLL_TASK_EVENTS=true shows them in Flower.
        "task_annotations": (
            {} if settings.poll_task_events else {"audio.poll": {"send_events": False}}
        ),
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "broker_channel_error_retry": True,
        "timezone": "UTC",
        "enable_utc": True,
        # Beat: RedBeat keeps the schedule in Redis and holds a lock, so a second beat process
        # waits as a standby and never fires an entry twice. Its URL and client options are set
        # explicitly: the fallback to broker_transport_options crashes beat (redbeat #319).
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_max_loop_interval": settings.beat_max_loop_interval,
        "redbeat_key_prefix": settings.key("redbeat"),
        "redbeat_lock_timeout": settings.beat_lock_timeout,
    }


class LazyConfig(Mapping[str, Any]):
    """A Celery configuration made when Celery first reads it: ``app.config_from_object`` keeps
    the object and reads it when the app is configured (a worker's, beat's or Flower's start, a
    process's first send), so importing the app reads no environment. A SettingsError raised
    by ``make`` reaches whoever configured the app."""

    def __init__(self, make: Callable[[], Mapping[str, Any]]) -> None:
        self._make = make

    @cached_property
    def _values(self) -> Mapping[str, Any]:
        return self._make()

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)
