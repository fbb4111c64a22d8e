"""gunicorn's configuration for the web service (the Procfile's and compose's ``web``):

    gunicorn -c python:worker.web.gunicorn_conf worker.web.app:application

Only gunicorn loads this module: it monkey-patches the process for gevent first of all, so that
every library the app imports afterwards (urllib3's SSLContext, redis' sockets) takes gevent's
versions; a module patched later would block every connection of the worker on its socket.

It binds ``WEB_HOST:WEB_PORT`` (read here, so neither the Procfile nor compose needs a shell to
expand them) and runs one gevent worker (worker/web/serving.py): one greenlet per connection,
each request read whole before the app sees it, so slow and idle clients hold greenlets, not
the service (issue 23; more processes: gunicorn's own ``WEB_CONCURRENCY``). gunicorn's access
log stays off: the app writes one line per request itself, without the query string or any
header (worker/web/app.py, ``AccessLog``). The settings are checked before anything is bound:
without API tokens (or ``API_AUTH=off``) the master exits with the reason, code 2.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402  (everything below is imported after the patch, on purpose)
import sys
from typing import Any, NoReturn

from config.settings import Settings, SettingsError, get_settings
from worker.web.app import create_app
from worker.web.serving import KEEPALIVE, WORKER_CONNECTIONS, bind_for


def _refuse(exc: SettingsError) -> NoReturn:
    print(f"configuration error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        _refuse(exc)


bind = bind_for(_settings())
worker_class = "worker.web.serving.Worker"
worker_connections = WORKER_CONNECTIONS
keepalive = KEEPALIVE
accesslog = None
# Should someone turn gunicorn's access log on (--access-logfile): still no query, no header.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = "info"
proc_name = "akool-audio-web"
# gunicorn >= 25 opens a control socket at one fixed path per user ($HOME/.gunicorn), which two
# servers on one host would share; nothing here uses it (older gunicorns ignore the name).
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Build the app once in the master, only to refuse to start with the reason."""
    try:
        create_app(get_settings())
    except SettingsError as exc:
        _refuse(exc)


def when_ready(server: Any) -> None:
    server.log.info("web service listening on http://%s", bind[0])
