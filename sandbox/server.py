"""``SandboxServer``: the state, the scheduler, the webhook pool and the HTTP server, wired up.

``start()`` binds (port 0 picks a free one) and returns once the socket listens; ``stop()``
shuts everything down and joins the threads it started. Also a context manager.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.http import SandboxHTTPServer
from sandbox.scheduler import Scheduler
from sandbox.state import SandboxState
from sandbox.webhooks import WebhookDispatcher

DEFAULT_CLIENT_SECRET = "sandbox-api-key-0123456789abcdef"
DEFAULT_API_KEY = DEFAULT_CLIENT_SECRET  # Akool's API key is the clientSecret
DEFAULT_CLIENT_ID = "c2FuZGJveGNsaWVudGlkMQ=="


class SandboxServer:
    """An Akool-compatible Audio API v3 and VoiceLab (v4) server on loopback, with state,
    lifecycle and faults."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SandboxConfig | Mapping[str, Any] | None = None,
        api_key: str | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
    ) -> None:
        if client_secret is None:
            client_secret = api_key if api_key is not None else DEFAULT_CLIENT_SECRET
        if api_key is None:
            api_key = client_secret
        if len(client_secret.encode()) not in (16, 24, 32):
            raise ValueError("client_secret must be 16, 24 or 32 bytes (it is the AES key)")
        if isinstance(config, Mapping):
            config = SandboxConfig.from_dict(config)
        self.host, self._port = host, port
        self.client_id, self.client_secret, self.api_key = client_id, client_secret, api_key
        self.url = ""
        self._scheduler = Scheduler()
        self._stopping = threading.Event()
        self.state = SandboxState(
            config or SandboxConfig(),
            api_key=api_key,
            client_id=client_id,
            client_secret=client_secret,
            scheduler=self._scheduler,
            notify=lambda hook: self._webhooks.send(hook),
        )
        self._webhooks = WebhookDispatcher(
            client_id=client_id,
            client_secret=client_secret,
            scheduler=self._scheduler,
            on_event=self.state.record_webhook,
        )
        self._httpd: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never show the secrets
        return f"SandboxServer(url={self.url!r})"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else self._port

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = SandboxHTTPServer((self.host, self._port), self)
        port = httpd.server_address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{port}"
        self.state.base_url = self.url
        self._scheduler.start()
        self._webhooks.start()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-http-{port}",
            daemon=True,
        )
        self._thread.start()
        self._httpd = httpd
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._webhooks.stop()
        self._scheduler.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the Python admin surface (the same as /_sandbox/) --------------------------------------

    def configure(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into the config (as POST /_sandbox/config); ValueError if any is bad."""
        return self.state.configure(fields).to_dict()

    def reset(self) -> None:
        """Forget jobs, stats, tokens, faults and pending webhooks; back to the start config."""
        self._webhooks.reset()
        self.state.reset()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def job(self, akool_id: str) -> dict[str, Any]:
        """The admin view of one job; KeyError if the sandbox never created it."""
        return self.state.job_view(akool_id)

    def jobs(self) -> list[dict[str, Any]]:
        return self.state.jobs_view()

    def clone(self, clone_id: str) -> dict[str, Any]:
        """The admin view of one v4 cloned voice (its ``_id``); KeyError if unknown."""
        return self.state.clone_view(clone_id)

    def clones(self) -> list[dict[str, Any]]:
        """Every v4 cloned voice, oldest first."""
        return self.state.clones_view()

    def pause(self, seconds: float) -> None:
        """Sleep for a ``slow`` fault, waking early when the server stops."""
        self._stopping.wait(seconds)
