"""The Redis keys of the job store, in one place for every part of it (``{prefix}`` is
``KEY_PREFIX``): a hash per job, the active index, the map from Akool's id, the timeline, the
listing indexes, the parked polls, the webhook dedupe marks and the notify lock."""

from __future__ import annotations

from config.settings import Settings


class JobKeys:
    def __init__(self, settings: Settings) -> None:
        self.s = settings

    def script(self, job_id: str, *more: str) -> list[str]:
        """The four keys every job script takes (worker/lua/_job.lua), then ``more``."""
        return [self.job(job_id), self.active, self.events(job_id), self.listing, *more]

    def job(self, job_id: str) -> str:
        """The job's hash (``job("")`` is the prefix of them all)."""
        return self.s.key("job", job_id)

    @property
    def active(self) -> str:
        """ZSET of active job ids scored by when their next action is due (the sweeper's)."""
        return self.s.key("active")

    def akool(self, akool_id: str) -> str:
        return self.s.key("akool", akool_id)

    def events(self, job_id: str) -> str:
        return self.s.key("events", job_id)

    @property
    def listing(self) -> str:
        """The prefix of the listing indexes (worker/jobs/listing.py)."""
        return self.s.key("jobs") + ":"

    @property
    def parked(self) -> str:
        return self.s.key("parked")

    @property
    def parked_messages(self) -> str:
        return self.s.key("parked-msg")

    def webhook_seen(self, akool_id: str, status: int) -> str:
        return self.s.key("webhook", "seen", f"{akool_id}:{status}")

    def notify_lock(self, job_id: str) -> str:
        return self.s.key("notify-lock", job_id)
