"""The web service's gunicorn configuration before issue 23 (gthread, one process of 4 threads,
gunicorn's default 2 s keep-alive), kept for bench/slowclients.py's "before" figures only."""

from config.settings import get_settings
from worker.web.serving import bind_for

bind = bind_for(get_settings())
worker_class = "gthread"
threads = 4
accesslog = None
errorlog = "-"
loglevel = "info"
control_socket_disable = True


def when_ready(server: object) -> None:
    print(f"web service listening on http://{bind[0]}", flush=True)
