"""Real Celery worker processes for tests: started with the project's own command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def worker_env(
    redis_url: str, sandbox_url: str, audio_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Settings for a fast test run: short polls, loopback allowed."""
    from sandbox import DEFAULT_API_KEY

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKOOL_", "POLL_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "AKOOL_BASE_URL": sandbox_url,
            "AKOOL_API_KEY": DEFAULT_API_KEY,
            "AUDIO_DIR": str(audio_dir),
            "ALLOW_PRIVATE_HOSTS": "127.0.0.1,localhost",
            "POLL_INITIAL_DELAY": "0.3",
            "POLL_MAX_DELAY": "2",
            "POLL_DEADLINE": "60",
            "AKOOL_READ_TIMEOUT": "3",
            "AKOOL_RATE_LIMIT": "200",
            "AKOOL_RATE_BURST": "50",
            "NOTIFY_SECRET": "test-notify-secret",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class Proc:
    """A command of the project in its own process group, logging to a file; ``start`` returns
    once ``ready`` appears in what this run logged (a restarted process appends to the log)."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], log: Path, ready: str | None
    ) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.ready = ready
        self.offset = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.offset = out.tell()
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.ready is not None:
            self.wait_for(self.ready, timeout)
        return self

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text()[self.offset :]:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[:4]} exited:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[:4]}: no {text!r}:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole process group: the process and its children."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class CeleryWorker(Proc):
    """``celery -A worker worker``, ready once it logs `` ready.``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        *,
        name: str = "w1",
        queues: str = "audio,poll,notify",
        pool: str = "prefork",
        concurrency: int = 2,
    ) -> None:
        args = [CELERY, "-A", "worker", "worker", "-Q", queues, "-P", pool,
                "-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", "INFO",
                "--without-mingle", "--without-gossip"]  # fmt: skip
        super().__init__(args, env, log, " ready.")
