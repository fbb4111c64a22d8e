"""Flower's options for ``celery -A worker flower`` (Flower reads ./flowerconfig.py by default).

Flower also reads ``FLOWER_*`` environment variables (``FLOWER_BASIC_AUTH=user:password``,
``FLOWER_PORT``, ``FLOWER_ADDRESS``); every ``FLOWER_*`` name must be a Flower option or Flower
exits (``akool-audio flower`` reads ``FLOWER_BASIC_AUTH_FILE`` for it). Here Flower refuses to
start without authentication: its dashboard can revoke tasks and shut workers down. Every page,
``/api/*`` and ``/metrics`` need the credential; only ``/healthcheck`` answers without it
(worker/broker/flowerguard.py). The credential is never printed.
"""

import os
import sys

from worker.broker import flowerguard

if not (os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH")):
    sys.exit(
        "flower: set FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH for OAuth); "
        "refusing to serve the dashboard without authentication"
    )

flowerguard.close()

# Loopback unless told otherwise (Flower's own default is every interface).
address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
# Flower keeps every task it has seen in memory until this bound (its max_tasks option).
max_tasks = int(os.environ.get("FLOWER_MAX_TASKS", "10000"))
# Drop workers that have been offline for an hour from the dashboard and /metrics.
purge_offline_workers = 3600
