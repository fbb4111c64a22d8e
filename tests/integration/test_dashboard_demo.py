"""``akool-audio demo --keep-running``: the dashboard's address and a token made for the run are
on screen before the batch starts, the dashboard shows the batch's jobs, and after the batch
everything stays up until the demo is told to stop, which then stops it all and exits 0."""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

from tests.support.procs import Proc
from tests.support.services import BIN
from tests.support.wait import until
from tests.support.webclient import WebClient


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_demo_shows_the_dashboard_and_keeps_running_until_told(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKOOL_", "API_", "WEB_"))}
    demo = Proc(
        [str(BIN / "akool-audio"), "demo", "--keep-running", "--concurrency", "4"],
        env,
        tmp_path / "demo.log",
        "log in with",
        cwd=tmp_path,  # its audio/demo directory goes here, not into the checkout
    )
    demo.start(timeout=120)
    try:
        text = demo.text()
        url = re.search(r"dashboard\s+(http://127\.0\.0\.1:(\d+)/)", text)
        token = re.search(r"log in with\s+(\S+)", text)
        assert url and token, text[-2000:]
        port = int(url.group(2))
        client = WebClient(port, token.group(1))
        assert client.get("/", token=None).status == 303  # the dashboard asks for a login
        demo.wait_for("The demo keeps running", 200)
        after = demo.text()
        # The address was on screen before the batch's summary, and is repeated after it.
        assert after.index("log in with") < after.index("succeeded, 1 failed (1 on purpose)")
        assert f"the dashboard is at {url.group(1)}" in after
        page = client.get("/")  # automation's way in: the same token as a Bearer header
        assert page.status == 200, page.raw[:300]
        html = page.raw.decode()
        assert html.count("<tr data-job=") == 20 and 'data-state="failed"' in html
        counts = client.get("/counts").json
        assert counts["total"] == 20 and counts["in_flight"] == 0
        assert listening(port)
        assert demo.proc is not None
        os.kill(demo.proc.pid, signal.SIGTERM)
        assert demo.proc.wait(60) == 0, demo.text()[-2000:]
        assert "stopped the web service, the worker, the sandbox and Redis" in demo.text()
        until(lambda: not listening(port), 10, "the web service to stop")
    finally:
        demo.stop()


def test_keep_running_is_an_option_and_off_by_default() -> None:
    from worker.cli.main import parser

    assert parser().parse_args(["demo", "--keep-running"]).keep_running is True
    assert parser().parse_args(["demo"]).keep_running is False
