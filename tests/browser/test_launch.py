"""The browser the dashboard's tests drive starts, or the failure says how to get it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

from tests.browser import conftest


def test_chromium_starts_and_runs_a_script(browser: Browser) -> None:
    page = browser.new_page()
    try:
        page.set_content("<p id='x'>dashboard</p><script>document.title = 'ok'</script>")
        assert page.title() == "ok"
        assert page.inner_text("#x") == "dashboard"
        assert browser.version.split(".")[0].isdigit()
    finally:
        page.close()


def test_a_missing_browser_fails_with_the_fix(
    playwright: Playwright, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(conftest, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.fail.Exception) as failed:
        conftest.launch(playwright)
    message = str(failed.value)
    assert "scripts/ensure-chromium.sh" in message
    assert "apt-get install chromium" in message
