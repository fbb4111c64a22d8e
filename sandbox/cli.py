"""``akool-audio sandbox`` / ``python -m sandbox``: serve the sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
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
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="clientId to accept")
    parser.add_argument(
        "--client-secret",
        default=DEFAULT_CLIENT_SECRET,
        help="clientSecret, which is also the x-api-key (16/24/32 chars)",
    )


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
        server = SandboxServer(
            host=args.host,
            port=args.port,
            config=config,
            client_id=args.client_id,
            client_secret=args.client_secret,
        )
    except (OSError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
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
