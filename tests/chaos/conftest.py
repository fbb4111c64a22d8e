"""Every test under tests/chaos is a long fault-injection run: marked ``chaos``, so ``make test``
deselects it and ``make chaos`` runs it."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.chaos)
