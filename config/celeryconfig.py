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

from typing import Any

from kombu.entity import Queue

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


def celery_config(settings: Settings) -> dict[str, Any]:
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
    }
    return {
        "broker_url": settings.redis_url,
        # kombu's Redis transport, but a message that is not JSON is dropped and logged
        # instead of stopping the worker (worker/broker/reliable_redis.py).
        "broker_transport": "worker.broker.reliable_redis:Transport",
        "result_backend": settings.redis_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
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
        "task_track_started": True,
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
        "worker_send_task_events": True,
        "task_send_sent_event": True,
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
        "redbeat_redis_url": settings.redis_url,
        "redbeat_redis_options": {"health_check_interval": 30, "socket_timeout": 10},
        "redbeat_key_prefix": settings.key("redbeat"),
        "redbeat_lock_timeout": settings.beat_lock_timeout,
    }
