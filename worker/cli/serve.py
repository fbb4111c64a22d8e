"""``akool-audio web`` (and its alias ``webhook``): the web service on Werkzeug's threaded
development server. Production runs gunicorn with its gevent worker instead
(worker/web/serving.py, worker/web/gunicorn_conf.py), which slow and idle clients cannot
starve."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from config.settings import Settings
from worker.web.app import configure_logging, create_app


class _Handler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: the app logs each request itself, without the query string."""

    def log(self, type: str, message: str, *args: Any) -> None:
        logging.getLogger("akool_audio.web").log(
            logging.ERROR if type == "error" else logging.INFO, message.rstrip(), *args
        )


def serve(app: Flask, host: str, port: int, banner: str) -> None:
    """Serve ``app`` until interrupted, one thread per request; ``banner`` is printed once
    listening, formatted with ``url``."""
    server = make_server(host, port, app, threaded=True, request_handler=_Handler)
    shown = f"[{host}]" if ":" in host else host
    print(banner.format(url=f"http://{shown}:{server.server_port}"), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def run(settings: Settings, host: str, port: int, *, webhook_alias: bool = False) -> None:
    """Build the app (raises SettingsError with the reason) and serve it."""
    configure_logging()
    # The address it binds (--host) is a name it answers to (WEB_ALLOWED_HOSTS, worker/web/edges.py)
    app = create_app(replace(settings, web_host=host), require_webhook=webhook_alias)
    if webhook_alias:
        banner = "webhook receiver listening on {url}/akool/webhook (the web service, /v1 too)"
    else:
        banner = "web service listening on {url}"
    serve(app, host, port, banner)
