"""``akool-audio``: the command line. Boring on purpose: parse, call, print, exit with a code."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from config.settings import MAX_PRESIGN_SECONDS, SettingsError, get_settings
from worker import __version__
from worker.akool.errors import AkoolError
from worker.akool.speech import APIS
from worker.akool.speechapi import SpeechApi
from worker.jobs import JobState
from worker.maintenance.retention import purge
from worker.pipeline import result_summary
from worker.services import (
    Unavailable,
    akool_client,
    reachable_job_store,
    reachable_redis,
    services,
)
from worker.storage import StorageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4


def _store() -> Any:
    return reachable_job_store()


def _summary(job: Any) -> dict[str, Any]:
    """The job's summary as callers get it, with a fresh link to a result in object storage."""
    svc = services()
    return result_summary(svc.store, svc.settings.download_url_ttl, job)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


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
        _print([dict(v.raw) for v in voices])
    else:
        for v in voices:
            detail = api.voice_detail(v)
            print(
                f"{v.voice_id:24} {v.source}  {v.name or '':16} {v.gender or '':8} {detail or ''}"
            )
    return EXIT_OK


def _json_option(name: str, raw: str | None) -> Any:
    """A JSON object given on the command line (``--voice-options '{"speed": 0.9}'``)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {name} is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"error: {name} must be a JSON object")
    return value


def _enqueue(kind: str, args: argparse.Namespace) -> int:
    """Send ``audio.<kind>`` with the options given on the command line; print the job id."""
    from worker.celery import app  # Celery and kombu: only the commands that send tasks

    jobs = _store()
    kwargs = {
        "input_text": args.text,
        "voice_id": args.voice_id,
        "voice_url": getattr(args, "voice_url", None),
        "rate": args.rate,
        "job_id": args.job_id,
        "notify_url": args.notify_url,
        "api": args.api,
        "voice_options": _json_option("--voice-options", args.voice_options),
        "language_code": args.language_code,
        "extra_options": _json_option("--extra-options", args.extra_options),
        "voice_model_name": getattr(args, "voice_model_name", None),
        "clone_options": _json_option("--clone-options", getattr(args, "clone_options", None)),
    }
    result = app.send_task(
        f"audio.{kind}", kwargs={k: v for k, v in kwargs.items() if v is not None}
    )
    job_id = args.job_id or result.id
    print(job_id)
    if not args.wait:
        return EXIT_OK
    return _wait(jobs, job_id, args.timeout)


def cmd_create(args: argparse.Namespace) -> int:
    return _enqueue("create", args)


def cmd_clone(args: argparse.Namespace) -> int:
    return _enqueue("clone", args)


def cmd_status(args: argparse.Namespace) -> int:
    job = _store().find(args.job_id)
    if job is None:
        print(f"no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    _print(
        {
            **_summary(job),
            "akool_status": job.akool_status,
            "polls": job.polls,
            "submit_attempts": job.submit_attempts,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "completed_at": job.completed_at,
            "storage_error": job.storage_error,
        }
    )
    return EXIT_OK


def cmd_url(args: argparse.Namespace) -> int:
    """Print a fresh link to a job's stored result (a presigned GET), or its path when the
    result is in a local directory."""
    s = get_settings()
    ttl = s.download_url_ttl if args.ttl is None else args.ttl
    if not 0 < ttl <= MAX_PRESIGN_SECONDS:
        print(f"--ttl must be 1 to {MAX_PRESIGN_SECONDS} s (7 days)", file=sys.stderr)
        return EXIT_USAGE
    job = _store().find(args.job_id)
    if job is None:
        print(f"no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    if job.state is not JobState.SUCCEEDED or not job.location:
        print(f"job {job.job_id} has no stored result (state {job.state.value})", file=sys.stderr)
        return EXIT_FAILED
    link = services().store.download_url(job.location, ttl)
    if link is None and not job.location.startswith("/"):
        print(
            f"the result is at {job.location}, but AUDIO_STORE here names a local directory: "
            "set AUDIO_STORE (and S3_ENDPOINT_URL) as the workers have them",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(link or job.location)
    return EXIT_OK


def _wait(jobs: Any, job_id: str, timeout: float) -> int:
    """Wait for a final state, printing each change of state, Akool status or poll count."""
    start = time.monotonic()
    seen: tuple[Any, ...] = ()
    while True:
        job = jobs.find(job_id)
        if job is not None:
            now = (job.state.value, job.akool_status, job.polls)
            if now != seen:
                seen = now
                print(
                    f"{time.monotonic() - start:6.1f}s  {job.state.value:11} akool status "
                    f"{job.akool_status or '-'}  polls {job.polls}",
                    file=sys.stderr,
                )
            if job.state.is_final:
                _print(_summary(job))
                return EXIT_OK if job.state.value == "succeeded" else EXIT_FAILED
        if time.monotonic() - start > timeout:
            print(f"timed out after {timeout:g} s waiting for {job_id}", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(0.25)  # ok-sleep: the CLI process, not a worker slot


def cmd_wait(args: argparse.Namespace) -> int:
    return _wait(_store(), args.job_id, args.timeout)


def cmd_batch(args: argparse.Namespace) -> int:
    from worker.celery import app  # as in _enqueue
    from worker.cli import batch  # rich: only this command draws its progress

    try:
        items = batch.load(Path(args.file))
    except (OSError, batch.BatchFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    outcome = batch.run(
        lambda name, kw: app.send_task(name, kwargs=kw), _store(), items, timeout=args.timeout
    )
    batch.show(outcome.records)
    print(
        f"\n{len(outcome.succeeded)} succeeded, {len(outcome.failed)} failed, "
        f"{len(outcome.cancelled)} cancelled, {outcome.missing} never recorded"
    )
    if not outcome.finished:
        return EXIT_TIMEOUT
    return EXIT_FAILED if outcome.failed or outcome.cancelled or outcome.missing else EXIT_OK


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
    got = purge(_store(), services().store, s.job_retention_days, s.audio_retention_days)
    _print(got.counts())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.devstack import demo

    return demo.run(keep=args.keep, workers=args.concurrency, keep_running=args.keep_running)


def _lazy(module: str, name: str) -> Any:
    """A command function imported when the command runs (its module imports this one)."""

    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), name)(args))

    return run


def _api(value: str) -> str:
    """An ``--api`` value: a key of Akool's API registry (imported only when it is given)."""
    from worker.akool.speech import speech_api

    try:
        return speech_api(value).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, help="the text to speak (at most 5000 words)")
    p.add_argument(
        "--api",
        type=_api,
        help="Akool's API for this job: v3 (Audio) or v4 (VoiceLab); AKOOL_API_VERSION if omitted",
    )
    p.add_argument("--rate", help='v3 speaking rate, "1%%" to "100%%" (default 100%%)')
    p.add_argument(
        "--voice-options",
        metavar="JSON",
        help='v4: e.g. \'{"speed": 0.9, "emotion": "happy"}\' (speed 0.7-1.2, stability, '
        "similarity_boost, style, speaker_boost, emotion, volume)",
    )
    p.add_argument("--language-code", help="v4: an ISO 639 code such as zh or pt")
    p.add_argument(
        "--extra-options",
        metavar="JSON",
        help='v4: e.g. \'{"audio_setting": {"format": "wav", "sample_rate": 44100}}\'',
    )
    p.add_argument("--job-id", help="idempotency key: the same id never submits twice")
    p.add_argument("--notify-url", help="POST the final summary here (signed)")
    p.add_argument("--wait", action="store_true", help="wait for the final summary")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait (with --wait)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="akool-audio",
        description=(
            "Text to speech through Akool's Audio API on Celery and Redis. Settings come from "
            "the environment (see README)."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("voices", help="list Akool voices")
    v.add_argument(
        "--from",
        dest="source",
        type=int,
        choices=(3, 4),
        help="3 official, 4 your own; both when omitted",
    )
    v.add_argument("--json", action="store_true")
    v.add_argument(
        "--refresh", action="store_true", help="ask Akool even when the voice cache is fresh"
    )
    v.add_argument(
        "--api",
        type=_api,
        help="v3 (Audio) or v4 (VoiceLab, read page by page); AKOOL_API_VERSION if omitted",
    )
    v.set_defaults(func=cmd_voices)

    c = sub.add_parser("create", help="enqueue audio.create; prints the job id")
    c.add_argument("--voice-id", required=True)
    _job_options(c)
    c.set_defaults(func=cmd_create)

    k = sub.add_parser("clone", help="enqueue audio.clone; prints the job id")
    g = k.add_mutually_exclusive_group(required=True)
    g.add_argument("--voice-url", help="the sample to clone (v4: its source_voice_file)")
    g.add_argument("--voice-id")
    k.add_argument("--voice-model-name", help='v4: the clone\'s model, "Akool Multilingual 1"')
    k.add_argument("--clone-options", metavar="JSON", help="v4: the clone's voice_options")
    _job_options(k)
    k.set_defaults(func=cmd_clone)

    s = sub.add_parser("status", help="show a job's record")
    s.add_argument("job_id")
    s.set_defaults(func=cmd_status)

    u = sub.add_parser("url", help="print a fresh download link to a job's stored result")
    u.add_argument("job_id")
    u.add_argument("--ttl", type=int, help="seconds the link is valid (DOWNLOAD_URL_TTL)")
    u.set_defaults(func=cmd_url)

    w = sub.add_parser("wait", help="wait until a job is final; exit 0 succeeded, 1 failed")
    w.add_argument("job_id")
    w.add_argument("--timeout", type=float, default=900)
    w.set_defaults(func=cmd_wait)

    for name, help_text in (
        ("cancel", "cancel a job (Akool may still finish a submitted job and charge for it)"),
        ("retry", "run a failed or cancelled job again under its job id"),
    ):
        op = sub.add_parser(name, help=help_text)
        op.add_argument("job_id")
        op.set_defaults(func=_lazy("worker.cli.jobctl", f"cmd_{name}"))

    b = sub.add_parser("batch", help="enqueue every request of a CSV or JSONL file and watch")
    b.add_argument("file")
    b.add_argument("--timeout", type=float, default=1800)
    b.set_defaults(func=cmd_batch)

    # The sandbox's own parser reads its options (sandbox_arguments), so that no other
    # command imports the sandbox, a development tool.
    sb = sub.add_parser(
        "sandbox",
        help="run the Akool-compatible sandbox server (`akool-audio sandbox --help`)",
        add_help=False,
    )
    sb.set_defaults(func=cmd_sandbox)

    web = sub.add_parser(
        "web", help="serve the web service: the /v1 API, /metrics, /akool/webhook (development)"
    )
    web.add_argument("--host", help="address to bind (WEB_HOST, default 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (WEB_PORT, default 8000)")
    web.set_defaults(func=cmd_web)

    wh = sub.add_parser("webhook", help="the web service on WEBHOOK_HOST/WEBHOOK_PORT (alias)")
    wh.add_argument("--host", help="address to bind (WEBHOOK_HOST, default 127.0.0.1)")
    wh.add_argument("--port", type=int, help="port (WEBHOOK_PORT, default 8000)")
    wh.set_defaults(func=cmd_web)

    fl = sub.add_parser(
        "flower",
        help="Flower (celery -A worker flower), its credential from FLOWER_BASIC_AUTH(_FILE)",
        add_help=False,
    )
    fl.set_defaults(func=_lazy("worker.cli.flower_cmd", "cmd_flower"))

    pg = sub.add_parser(
        "purge", help="purge files and records past retention now (beat also does this)"
    )
    pg.set_defaults(func=cmd_purge)

    d = sub.add_parser("demo", help="the whole system on a private Redis and the sandbox")
    d.add_argument("--keep", action="store_true", help="keep the temporary Redis directory")
    d.add_argument("--concurrency", type=int, default=16, help="worker threads")
    d.add_argument(
        "--keep-running",
        action="store_true",
        help="after the batch, keep everything (and the dashboard) running until Ctrl-C",
    )
    d.set_defaults(func=cmd_demo)

    # Recurring jobs in Redis (RedBeat): worker/cli/schedule_cmd.py, imported when run.
    sc = sub.add_parser("schedule", help="recurring jobs kept in Redis: add, list, rm")
    scs = sc.add_subparsers(dest="schedule_command", required=True)
    sa = scs.add_parser("add", help="add a schedule; every running beat picks it up")
    sa.add_argument("name", help="1-64 letters, digits, '-' or '_'")
    when = sa.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='"minute hour day-of-month month day-of-week" (UTC)')
    when.add_argument("--every", type=float, help="seconds between runs")
    sa.add_argument("--task", default="audio.create", choices=("audio.create", "audio.clone"))
    sa.add_argument("--job-id", required=True, help="template: {name} {date} {hour} {minute} {ts}")
    sa.add_argument("--request", help="the task's kwargs as a JSON object (without job_id)")
    for opt in ("--input-text", "--voice-id", "--voice-url", "--rate", "--notify-url"):
        sa.add_argument(opt, help="sets that field of --request")
    sa.set_defaults(func=_lazy("worker.cli.schedule_cmd", "cmd_add"))
    sl = scs.add_parser("list", help="every schedule (API, file, maintenance), last and next run")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=_lazy("worker.cli.schedule_cmd", "cmd_list"))
    sr = scs.add_parser("rm", help="remove a schedule added with `schedule add` or the API")
    sr.add_argument("name")
    sr.set_defaults(func=_lazy("worker.cli.schedule_cmd", "cmd_rm"))
    return p


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
