"""The browser tests' Chromium: Debian's ``chromium`` (scripts/ensure-chromium.sh installs it),
driven by Playwright for Python through ``executable_path``: Playwright cannot download a
browser of its own here. ``CHROMIUM`` names another binary.

``browser`` is one Chromium for the session; ``page`` is a fresh context (its own cookies) at a
laptop's width for one test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FIX = (
    "the browser tests need Debian's chromium: run scripts/ensure-chromium.sh "
    "(as root it runs apt-get install chromium chromium-driver; otherwise "
    "`sudo apt-get install chromium chromium-driver`), or set CHROMIUM=/path/to/chromium"
)
LAPTOP: dict[str, Any] = {"width": 1280, "height": 800}
PHONE: dict[str, Any] = {"width": 390, "height": 844}
# Screenshots go to docs/screenshots when SAVE_SCREENSHOTS=1 (`make screenshots`), else to the
# test run's own directory (so that a test run leaves the tree as it was).
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def launch(pw: Playwright) -> Browser:
    """Chromium at ``CHROMIUM``; a missing or broken browser fails with the way to fix it."""
    from playwright.sync_api import Error

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: {FIX}", pytrace=False)
    try:
        return pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
    except Error as exc:
        pytest.fail(f"{CHROMIUM} did not start ({exc}); {FIX}", pytrace=False)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is not installed: `make install` (pip install -e '.[dev]')", pytrace=False
        )
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # what a page shows may wait on a loaded machine
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(30_000)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go."""
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SHOTS
    return tmp_path_factory.mktemp("screenshots")
