"""The Lua scripts every Redis-side transition runs, one ``.lua`` file each, beside this module.

Each script's header says its KEYS and ARGV. Scripts run atomically in Redis, so concurrent
workers never see or write half a transition. The job scripts (``job_*.lua``) share the
functions of ``_job.lua`` (the timeline, the listing indexes, cancellation), prepended by
:func:`job_script`; the rate limit's scripts share ``_ratelimit.lua`` (:func:`ratelimit_script`).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua``."""
    return files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@cache
def job_script(name: str) -> str:
    """A job script with the shared functions of ``_job.lua`` before it."""
    return source("_job") + "\n" + source(name)


@cache
def ratelimit_script(name: str) -> str:
    """A rate-limit script with the token bucket's functions of ``_ratelimit.lua`` before it."""
    return source("_ratelimit") + "\n" + source(name)
