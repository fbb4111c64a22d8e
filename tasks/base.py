"""What every task of ours shares: :class:`DurableTask`, the common options and ``again``."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError

from worker import pipeline
from worker.broker import compat
from worker.services import services

log = logging.getLogger(__name__)


class DurableTask(Task):
    """A task whose retry never drops its message, and that runs again after a soft time limit.

    Celery's ``retry`` publishes a new message and, if that publish fails (Redis restarting, a
    cut connection), rejects the current one *without* requeue: the step, and with it the rest
    of the chain, is gone. Here the current message is requeued instead; if even that cannot
    reach Redis, it stays unacked and comes back after the visibility timeout.
    """

    #: Its task-succeeded event leaves out the signatures of the result's links.
    Request = "worker.broker.redact:RedactingRequest"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Past the soft time limit Celery would record a failure and ack: the rest of the chain
        # would be gone until the beat sweep finds the job. The step runs again instead, within
        # the job's error budget.
        try:
            return super().__call__(*args, **kwargs)
        except pipeline.Stale as stale:
            # An earlier attempt's message (the job was retried or cancelled meanwhile): its
            # chain ends here, acked; the current attempt has its own chain.
            log.info("%s: %s", self.name, stale)
            end_here(self)
            return None
        except SoftTimeLimitExceeded:
            job_id = str(args[0] if args else kwargs.get("job_id") or self.request.id)
            countdown = pipeline.timed_out(services(), job_id, self.request.retries)
            if countdown is None:
                raise
            raise self.retry(countdown=countdown, max_retries=None) from None

    def on_replace(self, sig: Any) -> Any:
        # Celery sends the replacement and raises Ignore, whose traceback is formatted for
        # every entry task (about 2 ms). The same outcome without it: the replacement carries
        # this task's id, chain and callbacks (Task.replace put them there), so this one ends
        # here with no result of its own.
        if self.request.is_eager:
            return super().on_replace(sig)
        sig.delay()
        end_here(self)
        return None

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as rejected:
            if rejected.requeue:
                raise
            raise Reject(rejected.reason, requeue=True) from None


# Infrastructure hiccups (Redis restarting, a broker reconnect) are retried by Celery itself;
# everything about Akool is decided by the pipeline. Never a blanket Exception.
_INFRA = (redis.ConnectionError, redis.TimeoutError, OperationalError)

#: The options of every pipeline task: late acks, durable retries, infrastructure autoretry.
OPTIONS: dict[str, Any] = {
    "base": DurableTask,
    "bind": True,
    "acks_late": True,
    "max_retries": None,
    "autoretry_for": _INFRA,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
}

#: Maintenance tasks give up after a few infrastructure retries: the next run comes anyway.
MAINTENANCE_OPTIONS: dict[str, Any] = {**OPTIONS, "max_retries": 5}


def end_here(task: Task) -> None:
    """End this task's chain here and store no result for it: the step returns normally and
    nothing runs after it. Celery's ``Ignore`` does the same for the price of a formatted
    traceback per task (about 2 ms, a fifth of a poll's CPU: bench/pollcost.py); the trace
    reads both fields of the request after the task returns (celery/app/trace.py)."""
    compat.end_chain(task.request)


def again(task: Task, later: pipeline.Later) -> NoReturn:
    """Run this step again after ``later.countdown`` (the message goes back to Redis)."""
    raise task.retry(countdown=later.countdown, max_retries=None)
