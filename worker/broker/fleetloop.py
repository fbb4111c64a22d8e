"""The threads every worker process runs beside its consumer: the heartbeat (and the restorer
of dead workers' messages, worker/broker/heartbeat.py) and the due-poll dispatcher
(worker/jobs/parking.py). Started when the worker is ready; stopped when it has shut down
(after its last task: a heartbeat that stopped earlier would let another worker restore the
messages of tasks still running here)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from worker.broker.heartbeat import Heartbeat
from worker.jobs.parking import Dispatcher
from worker.services import services

log = logging.getLogger(__name__)

RESTORE_EVERY = 2.0


class FleetLoop:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.heartbeat: Heartbeat | None = None

    def start(self) -> None:
        svc = services()
        s = svc.settings
        connection = self.app.connection_for_write()
        self.heartbeat = Heartbeat(connection.default_channel, s.heartbeat_timeout)
        self.heartbeat.beat()  # before anything else: this worker is alive from now on
        dispatcher = Dispatcher(svc.jobs.parking, svc.limiter.penalty_key, s)
        self._spawn("heartbeat", self._beat)
        self._spawn("dispatcher", dispatcher.run, self.stopping)

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"akool-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _beat(self) -> None:
        """Refresh the heartbeat every third of its timeout; look for dead workers every
        ``RESTORE_EVERY`` seconds (a dead worker's messages are back within the timeout plus
        that)."""
        hb = self.heartbeat
        assert hb is not None
        tick = min(RESTORE_EVERY, hb.timeout / 3)
        next_beat = time.monotonic() + hb.timeout / 3
        while not self.stopping.wait(tick):
            try:
                if time.monotonic() >= next_beat:
                    hb.beat()
                    next_beat = time.monotonic() + hb.timeout / 3
                hb.restore_dead()
            except Exception as exc:  # a Redis hiccup: the next tick tries again
                log.warning("heartbeat: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        if self.heartbeat is not None:
            try:
                self.heartbeat.stop()
            except Exception as exc:
                log.warning("could not remove the heartbeat (%s); it expires by itself", exc)
