"""``akool-audio sandbox`` / ``python -m sandbox``: serve the sandbox until SIGINT or SIGTERM.

Credentials come from the flags, else from the environment a worker reads (AKOOL_API_KEY,
AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET), else the sandbox's defaults, so one environment can drive
both the sandbox and a worker."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer

EXIT_OK = 0
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="JSON|@FILE",
        help='sandbox config as JSON, or @path to a JSON file, e.g. \'{"lifecycle": '
        '{"mode": "immediate"}}\'',
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for faults and lifecycle")
    parser.add_argument(
        "--client-id",
        default=None,
        help="clientId to accept (default: $AKOOL_CLIENT_ID, else the sandbox's)",
    )
    parser.add_argument(
        "--client-secret",
        default=None,
        help="clientSecret to accept, 16/24/32 chars (the webhooks' AES key); also the x-api-key "
        "unless --api-key is given. Without either flag: $AKOOL_CLIENT_SECRET and "
        "$AKOOL_API_KEY, each standing in for the other when alone; else the sandbox's",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="x-api-key to accept (default: --client-secret; without either flag, "
        "$AKOOL_API_KEY, else $AKOOL_CLIENT_SECRET, else the sandbox's)",
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the sandbox accepts; ``source`` names where the secret came from, for messages."""

    client_id: str
    client_secret: str
    api_key: str
    source: str

    def __repr__(self) -> str:  # never show the secrets
        return f"Credentials(source={self.source!r})"


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None  # empty counts as unset, as in config.settings


def credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> Credentials:
    """Flags win, then the environment a worker reads (AKOOL_*), then the sandbox's defaults.

    The secret and the key are one pair, as at Akool (the API key *is* the client secret): if
    either flag is given the environment's pair is ignored, and within a pair a missing value is
    the other one. The client id is resolved on its own (``--client-id``, ``AKOOL_CLIENT_ID``).
    """
    client_id = args.client_id or _env(environ, "AKOOL_CLIENT_ID") or DEFAULT_CLIENT_ID
    flags = (args.client_secret, args.api_key, "--client-secret", "--api-key")
    env = (
        _env(environ, "AKOOL_CLIENT_SECRET"),
        _env(environ, "AKOOL_API_KEY"),
        "AKOOL_CLIENT_SECRET",
        "AKOOL_API_KEY",
    )
    for secret, key, secret_name, key_name in (flags, env):
        if secret is not None:
            return Credentials(client_id, secret, secret if key is None else key, secret_name)
        if key is not None:
            return Credentials(client_id, key, key, key_name)
    return Credentials(client_id, DEFAULT_CLIENT_SECRET, DEFAULT_CLIENT_SECRET, "the default")


def _load_config(raw: str | None, seed: int | None) -> SandboxConfig:
    fields: dict[str, Any] = {}
    if raw:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError("--config must be a JSON object")
    if seed is not None:
        fields["seed"] = seed
    return SandboxConfig.from_dict(fields)


def run(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args.config, args.seed)
        creds = credentials(args, os.environ)
    except (OSError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        server = SandboxServer(
            host=args.host,
            port=args.port,
            config=config,
            api_key=creds.api_key,
            client_id=creds.client_id,
            client_secret=creds.client_secret,
        )
    except ValueError as exc:  # the secret's length; never print the secret itself
        print(f"sandbox: {exc}; the secret came from {creds.source}", file=sys.stderr)
        return EXIT_USAGE
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _stop)
    with server:
        print(f"sandbox listening on {server.url}", flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
