"""The ``akool-audio`` command line's parser: every command, its options and its help. Each
command names its function by module, imported only when that command runs."""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass

from worker import __version__


@dataclass(frozen=True)
class Command:
    """A command function, imported when the command runs: only the command given pays for its
    imports (Celery, Flask, rich, the sandbox), and the command modules import worker.cli.main."""

    module: str
    name: str

    def __call__(self, args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(self.module), self.name)(args))


def _jobs(name: str) -> Command:
    return Command("worker.cli.jobs_cmd", name)


def _main(name: str) -> Command:
    return Command("worker.cli.main", name)


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
    v.set_defaults(func=Command("worker.cli.voices_cmd", "cmd_voices"))

    c = sub.add_parser("create", help="enqueue audio.create; prints the job id")
    c.add_argument("--voice-id", required=True)
    _job_options(c)
    c.set_defaults(func=_jobs("cmd_create"))

    k = sub.add_parser("clone", help="enqueue audio.clone; prints the job id")
    g = k.add_mutually_exclusive_group(required=True)
    g.add_argument("--voice-url", help="the sample to clone (v4: its source_voice_file)")
    g.add_argument("--voice-id")
    k.add_argument("--voice-model-name", help='v4: the clone\'s model, "Akool Multilingual 1"')
    k.add_argument("--clone-options", metavar="JSON", help="v4: the clone's voice_options")
    _job_options(k)
    k.set_defaults(func=_jobs("cmd_clone"))

    s = sub.add_parser("status", help="show a job's record")
    s.add_argument("job_id")
    s.set_defaults(func=_jobs("cmd_status"))

    u = sub.add_parser("url", help="print a fresh download link to a job's stored result")
    u.add_argument("job_id")
    u.add_argument("--ttl", type=int, help="seconds the link is valid (DOWNLOAD_URL_TTL)")
    u.set_defaults(func=_jobs("cmd_url"))

    w = sub.add_parser("wait", help="wait until a job is final; exit 0 succeeded, 1 failed")
    w.add_argument("job_id")
    w.add_argument("--timeout", type=float, default=900)
    w.set_defaults(func=_jobs("cmd_wait"))

    for name, help_text in (
        ("cancel", "cancel a job (Akool may still finish a submitted job and charge for it)"),
        ("retry", "run a failed or cancelled job again under its job id"),
    ):
        op = sub.add_parser(name, help=help_text)
        op.add_argument("job_id")
        op.set_defaults(func=Command("worker.cli.jobctl", f"cmd_{name}"))

    b = sub.add_parser("batch", help="enqueue every request of a CSV or JSONL file and watch")
    b.add_argument("file")
    b.add_argument("--timeout", type=float, default=1800)
    b.set_defaults(func=_jobs("cmd_batch"))

    # The sandbox's own parser reads its options (sandbox_arguments), so that no other
    # command imports the sandbox, a development tool.
    sb = sub.add_parser(
        "sandbox",
        help="run the Akool-compatible sandbox server (`akool-audio sandbox --help`)",
        add_help=False,
    )
    sb.set_defaults(func=_main("cmd_sandbox"))

    web = sub.add_parser(
        "web", help="serve the web service: the /v1 API, /metrics, /akool/webhook (development)"
    )
    web.add_argument("--host", help="address to bind (WEB_HOST, default 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (WEB_PORT, default 8000)")
    web.set_defaults(func=_main("cmd_web"))

    wh = sub.add_parser("webhook", help="the web service on WEBHOOK_HOST/WEBHOOK_PORT (alias)")
    wh.add_argument("--host", help="address to bind (WEBHOOK_HOST, default 127.0.0.1)")
    wh.add_argument("--port", type=int, help="port (WEBHOOK_PORT, default 8000)")
    wh.set_defaults(func=_main("cmd_web"))

    fl = sub.add_parser(
        "flower",
        help="Flower (celery -A worker flower), its credential from FLOWER_BASIC_AUTH(_FILE)",
        add_help=False,
    )
    fl.set_defaults(func=Command("worker.cli.flower_cmd", "cmd_flower"))

    pg = sub.add_parser(
        "purge", help="purge files and records past retention now (beat also does this)"
    )
    pg.set_defaults(func=_main("cmd_purge"))

    d = sub.add_parser("demo", help="the whole system on a private Redis and the sandbox")
    d.add_argument("--keep", action="store_true", help="keep the temporary Redis directory")
    d.add_argument("--concurrency", type=int, default=16, help="worker threads")
    d.add_argument(
        "--keep-running",
        action="store_true",
        help="after the batch, keep everything (and the dashboard) running until Ctrl-C",
    )
    d.set_defaults(func=_main("cmd_demo"))

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
    sa.set_defaults(func=Command("worker.cli.schedule_cmd", "cmd_add"))
    sl = scs.add_parser("list", help="every schedule (API, file, maintenance), last and next run")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=Command("worker.cli.schedule_cmd", "cmd_list"))
    sr = scs.add_parser("rm", help="remove a schedule added with `schedule add` or the API")
    sr.add_argument("name")
    sr.set_defaults(func=Command("worker.cli.schedule_cmd", "cmd_rm"))
    return p
