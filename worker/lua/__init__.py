"""The Lua scripts every Redis-side transition runs, one ``.lua`` file each, beside this module.

Each script's header says its KEYS and ARGV. Scripts run atomically in Redis, so concurrent
workers never see or write half a transition.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua``."""
    return files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
