"""moto's S3 server in a process of its own on a free loopback port: for the reliability suite
and the benchmarks, where the server's memory and CPU must not be the measuring process's."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from worker.devstack.procs import Proc

READY = "moto listening on"
# It says where it listens, and serves until it is stopped.
SCRIPT = f"""
import threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"{READY} http://{{host}}:{{port}}", flush=True)
threading.Event().wait()
"""


class MotoServer(Proc):
    """``url`` is set once it listens."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        super().__init__(
            [sys.executable, "-c", SCRIPT], {**env, "PYTHONUNBUFFERED": "1"}, log, READY
        )
        self.url = ""

    def start(self, timeout: float = 60.0) -> Self:
        super().start(timeout)
        self.url = self.text()[self.offset :].split(READY, 1)[1].split()[0]
        return self
