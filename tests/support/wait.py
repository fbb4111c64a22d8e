"""The one polling helper of the tests: wait for something that happens in another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], timeout: float, what: str, *, interval: float = 0.1) -> T:
    """Call ``check`` every ``interval`` seconds until it returns a truthy value, and return
    that value. After ``timeout`` seconds, fail with an AssertionError naming ``what`` and the
    last value ``check`` returned. ``check`` runs at least once."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            shown = repr(got)
            if len(shown) > 500:
                shown = shown[:500] + "..."
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {shown}")
        time.sleep(interval)
