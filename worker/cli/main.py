"""``akool-audio``: the command line. Boring on purpose: parse, call, print, exit with a code.
The parser is in worker/cli/args.py; the commands on jobs in jobs_cmd, ``voices`` in voices_cmd;
the commands that run a service (sandbox, web, demo) and ``purge`` are here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from config.settings import SettingsError, get_settings
from worker.akool.errors import AkoolError
from worker.cli.args import parser
from worker.maintenance.retention import purge
from worker.services import Unavailable, reachable_job_store, services
from worker.storage import StorageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4


def job_store() -> Any:
    return reachable_job_store()


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def sandbox_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The options of ``akool-audio sandbox``, read by the sandbox's own parser."""
    from sandbox import cli as sandbox_cli

    p = argparse.ArgumentParser(
        prog="akool-audio sandbox", description="Run the Akool-compatible sandbox server."
    )
    sandbox_cli.add_arguments(p)
    return p.parse_args(argv)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox import cli as sandbox_cli

    return int(sandbox_cli.run(sandbox_arguments(args.rest)))


def cmd_web(args: argparse.Namespace) -> int:
    """The web service on the development server; ``webhook`` is the same on WEBHOOK_*."""
    from worker.cli import serve  # Flask: only this command serves

    s = get_settings()
    alias = args.command == "webhook"
    host = args.host or (s.webhook_host if alias else s.web_host)
    port = args.port if args.port is not None else (s.webhook_port if alias else s.web_port)
    try:
        serve.run(s, host, port, webhook_alias=alias)  # SettingsError: exit 2, with the reason
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    s = get_settings()
    got = purge(job_store(), services().store, s.job_retention_days, s.audio_retention_days)
    print_json(got.counts())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.devstack import demo

    return demo.run(keep=args.keep, workers=args.concurrency, keep_running=args.keep_running)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command not in ("sandbox", "flower"):
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except StorageError as exc:
        print(f"storage error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except AkoolError as exc:
        print(f"Akool error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
