"""Webhook delivery: Akool's encrypted envelope, POSTed by a small pool of daemon threads.

Each callback is sealed once (``worker.akool.crypto.seal``) and the same body is re-sent on every
retry until the receiver answers exactly HTTP 200, after ``retry_delays`` seconds each; then it is
given up. Retries wait on the shared scheduler, never in a sleeping thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.lifecycle import Webhook
from sandbox.scheduler import Scheduler
from worker.akool.crypto import seal

log = logging.getLogger("sandbox")

# Loopback only: never route callbacks through an environment proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class _Delivery:
    hook: Webhook
    body: bytes
    attempt: int
    generation: int


class WebhookDispatcher:
    """``send(hook)`` queues a callback; ``on_event(name)`` counts each attempt's outcome."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        scheduler: Scheduler,
        on_event: Callable[[str], None],
        workers: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_id, self._client_secret = client_id, client_secret
        self._scheduler, self._on_event, self._clock = scheduler, on_event, clock
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._generation = 0

    def start(self) -> None:
        for n in range(self._workers):
            t = threading.Thread(target=self._run, name=f"sandbox-webhook-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.reset()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def reset(self) -> None:
        """Forget every pending callback and retry."""
        self._generation += 1

    def send(self, hook: Webhook) -> None:
        envelope = seal(
            hook.payload(), self._client_id, self._client_secret, int(self._clock() * 1000)
        )
        body = json.dumps(envelope.to_json()).encode()
        self._queue.put(_Delivery(hook, body, 0, self._generation))

    def _post(self, delivery: _Delivery) -> int | None:
        req = urllib.request.Request(
            delivery.hook.webhook_url,
            data=delivery.body,
            headers={"Content-Type": "application/json", "User-Agent": "akool-sandbox-webhook"},
            method="POST",
        )
        try:
            with _OPENER.open(req, timeout=delivery.hook.timeout) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (OSError, ValueError):
            return None

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            if delivery.generation != self._generation:
                continue
            self._on_event("sent")
            status = self._post(delivery)
            if delivery.generation != self._generation:
                continue
            if status == 200:
                self._on_event("delivered")
                continue
            self._on_event("failed_attempts")
            delays = delivery.hook.retry_delays
            if delivery.attempt >= len(delays):
                self._on_event("given_up")
                log.debug(
                    "webhook for %s given up after %d attempts",
                    delivery.hook.job_id,
                    delivery.attempt + 1,
                )
                continue
            retry = _Delivery(
                delivery.hook, delivery.body, delivery.attempt + 1, delivery.generation
            )
            self._scheduler.call_later(delays[delivery.attempt], self._requeue(retry))

    def _requeue(self, delivery: _Delivery) -> Callable[[], None]:
        return lambda: self._queue.put(delivery)
