"""Celery's side of Redis: kombu's transport with a reliable fetch (``reliable_redis``) and what
task arguments look like in Flower and events (``redact``)."""
