"""The worker processes that ``make demo``, the tests and the benchmarks start: a command in its
own process group logging to a file, ``celery worker`` on top of it, and a worker's environment
against the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from sandbox import DEFAULT_API_KEY

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
QUIET = ("--without-mingle", "--without-gossip")


def worker_env(
    redis_url: str,
    sandbox_url: str,
    audio_dir: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    keep_shell: bool = False,
) -> dict[str, str]:
    """This process's environment for a worker against the sandbox on loopback, then
    ``overrides``. The calling shell's ``AKOOL_*``, ``POLL_*`` and ``PYTHONPATH`` are replaced
    (the settings come from the caller alone and this checkout is imported), unless
    ``keep_shell`` (the demo) passes them through as they are. ``ALLOW_PRIVATE_HOSTS`` opens
    the sandbox's port on loopback and no other (:func:`sandbox_allow`)."""
    if keep_shell:
        env = dict(os.environ)
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AKOOL_", "POLL_"))}
        env["PYTHONPATH"] = str(ROOT)
    env.update(
        {
            "REDIS_URL": redis_url,
            "AKOOL_BASE_URL": sandbox_url,
            "AKOOL_API_KEY": DEFAULT_API_KEY,
            "AUDIO_DIR": str(audio_dir),
            "ALLOW_PRIVATE_HOSTS": ",".join(sandbox_allow(sandbox_url)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides or {})
    return env


def sandbox_allow(*urls: str) -> tuple[str, ...]:
    """``ALLOW_PRIVATE_HOSTS`` entries for servers on loopback: ``127.0.0.1:<port>`` and
    ``localhost:<port>`` of each URL's port, so a ``notify_url`` cannot reach the other
    services of the host (Redis, say)."""
    out: list[str] = []
    for url in urls:
        port = urlsplit(url).port or (443 if url.startswith("https:") else 80)
        out += [f"127.0.0.1:{port}", f"localhost:{port}"]
    return tuple(out)


class Proc:
    """A command in its own process group, logging to a file; ``start`` returns once ``ready``
    appears in what this run logged (a restarted process appends to the log). ``cwd=None``:
    the caller's working directory."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        ready: str | None,
        *,
        cwd: Path | None = ROOT,
    ) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.ready = ready
        self.cwd = cwd
        self.offset = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.args[:4]} is not running")
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Self:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.offset = out.tell()
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.cwd,
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
            time.sleep(0.1)  # ok-sleep: waiting for another process's log line

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
        """SIGTERM the process group; SIGKILL it if it is still there after ``timeout``."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class CeleryWorker(Proc):
    """``celery -A APP worker``. At ``loglevel`` INFO or DEBUG it is ready once it logs
    `` ready.``; at a quieter level ``start`` does not wait (the caller does). ``celery`` is
    the command that runs Celery: the ``celery`` script beside this Python, or
    ``python -m celery`` (the demo)."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        *,
        app: str = "worker",
        name: str = "w1",
        queues: str = "audio,poll,notify",
        pool: str = "prefork",
        concurrency: int = 2,
        loglevel: str = "INFO",
        options: Sequence[str] = QUIET,
        celery: Sequence[str] = (CELERY,),
        cwd: Path | None = ROOT,
    ) -> None:
        args = [*celery, "-A", app, "worker", "-Q", queues, "-P", pool, "-c", str(concurrency),
                "-n", f"{name}@%h", "--loglevel", loglevel, *options]  # fmt: skip
        ready = " ready." if loglevel.upper() in ("DEBUG", "INFO") else None
        super().__init__(args, env, log, ready, cwd=cwd)
