"""``akool-audio flower [FLOWER OPTIONS]``: Flower (``celery -A worker flower``) with its
credential from ``FLOWER_BASIC_AUTH`` or the file ``FLOWER_BASIC_AUTH_FILE`` names.

Flower reads ``FLOWER_BASIC_AUTH`` from its own environment and exits on a ``FLOWER_*`` name it
does not know, ``FLOWER_BASIC_AUTH_FILE`` among them. So this command reads the settings (the
file, or the error of setting both), hands Flower the credential in this process's environment
(never on a command line, where ``ps`` shows it) and runs Flower in this same process.
"""

from __future__ import annotations

import argparse
import os
import sys

from celery.bin.celery import main as celery_main

from config.settings import get_settings


def cmd_flower(args: argparse.Namespace) -> int:
    settings = get_settings()  # SettingsError names FLOWER_BASIC_AUTH(_FILE) when both are set
    os.environ.pop("FLOWER_BASIC_AUTH_FILE", None)
    if settings.flower_basic_auth:
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    sys.argv = ["celery", "-A", "worker", "flower", *args.rest]
    return int(celery_main() or 0)
