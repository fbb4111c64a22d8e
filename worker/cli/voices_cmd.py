"""``akool-audio voices``: Akool's voices for one API, from the fleet's voice cache when it is
fresh, else from Akool."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import redis

from config.settings import get_settings
from worker.akool.speech import APIS
from worker.akool.speechapi import SpeechApi
from worker.cli.main import EXIT_OK, print_json
from worker.services import akool_client, reachable_redis, services


def cmd_voices(args: argparse.Namespace) -> int:
    s = get_settings()
    s.require_credentials()
    api = APIS[args.api or s.akool_api_version]
    cached = None if args.refresh else _cached_voices(api)
    if cached is not None:
        voices, age = cached
        print(f"(from the {api.name} voice cache, refreshed {age:.0f} s ago)", file=sys.stderr)
        if args.source is not None:
            voices = [v for v in voices if v.source == args.source]
        return _show_voices(api, voices, args.json)
    # The fleet's token cache when Redis answers; without Redis the command still asks Akool.
    client = akool_client(s, reachable_redis(s), get_retries=2)
    return _show_voices(api, api.list_voices(client, args.source), args.json)


def _cached_voices(api: SpeechApi) -> tuple[list[Any], float] | None:
    """The voice list from Redis when beat keeps it fresh; None without Redis or a fresh cache."""
    s = get_settings()
    try:
        cached = services().voices.load(api.name) if s.voice_cache_ttl > 0 else None
    except redis.RedisError:
        return None
    if cached is None:
        return None
    return api.cached_voices(cached.voices), cached.age


def _show_voices(api: SpeechApi, voices: list[Any], as_json: bool) -> int:
    if as_json:
        print_json([dict(v.raw) for v in voices])
    else:
        for v in voices:
            detail = api.voice_detail(v)
            print(
                f"{v.voice_id:24} {v.source}  {v.name or '':16} {v.gender or '':8} {detail or ''}"
            )
    return EXIT_OK
