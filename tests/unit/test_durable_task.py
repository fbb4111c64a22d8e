"""A retry whose new message cannot be published must not drop the current one."""

from __future__ import annotations

import pytest
from celery import Celery
from celery.exceptions import Reject

from tasks.base import DurableTask
from tests.support.redis import free_port


def test_a_retry_that_cannot_reach_redis_requeues_instead_of_dropping() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens here
    app = Celery("probe", broker=dead, backend=None, set_as_current=False)
    app.conf.update(
        broker_connection_retry=False,
        broker_connection_max_retries=0,
        broker_transport_options={"max_retries": 0},
    )

    @app.task(base=DurableTask, bind=True, name="probe.step")
    def step(self: DurableTask) -> None:  # pragma: no cover - never run, only retried
        pass

    step.push_request(
        id="t-1", args=[], kwargs={}, retries=0, delivery_info={}, called_directly=False
    )
    try:
        with pytest.raises(Reject) as info:
            step.retry(countdown=5, max_retries=None)
    finally:
        step.pop_request()
    # Celery's own Task.retry would raise Reject(requeue=False): the message would be dropped.
    assert info.value.requeue is True
    app.close()
