"""What each maintenance run did, kept in Redis: the last report per task
(``{prefix}:maintenance``, one field per task) and running totals of its counts
(``{prefix}:maintenance:totals``, fields ``name.count``), so what each schedule did stays
visible between runs."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from config.settings import Settings


class Reports:
    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self._r = r
        self.last_key = settings.key("maintenance")
        self.totals_key = settings.key("maintenance", "totals")
        self.recurring_runs_key = settings.key("recurring", "runs")

    def record(self, name: str, report: dict[str, Any]) -> dict[str, Any]:
        """Keep ``report`` (stamped with the time) as the last of ``name``; returns it."""
        report = {"at": time.time(), **report}
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hset(self.last_key, name, json.dumps(report))
            pipe.hincrby(self.totals_key, f"{name}.runs", 1)
            for field, value in report.items():
                if isinstance(value, int) and not isinstance(value, bool) and value:
                    pipe.hincrby(self.totals_key, f"{name}.{field}", value)
            pipe.execute()
        return report

    def count_recurring_run(self, name: str) -> None:
        self._r.hincrby(self.recurring_runs_key, name, 1)
