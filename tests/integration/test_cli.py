"""The `akool-audio` command against a real worker, Redis and the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import VOICES, SandboxServer
from tests.support.procs import ROOT, CeleryWorker, worker_env
from tests.support.redis import RedisServer, free_port

CLI = str(Path(sys.executable).with_name("akool-audio"))
VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox(lifecycle={"mode": "polls", "polls": 2})


@pytest.fixture(scope="module")
def env(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("cli")
    env = worker_env(redis_server.url, sb.url, tmp / "audio")
    worker = CeleryWorker(env, tmp / "worker.log").start()
    yield env
    worker.stop()


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_create_wait_prints_progress_and_the_summary(env: dict[str, str]) -> None:
    out = run(env, "create", "--voice-id", VOICE, "--text", "From the command line.", "--wait")
    assert out.returncode == 0, out.stderr
    job_id, body = out.stdout.split("\n", 1)
    summary = json.loads(body)
    assert summary["job_id"] == job_id and summary["state"] == "succeeded"
    assert "akool status" in out.stderr and "succeeded" in out.stderr
    status = run(env, "status", job_id)
    assert json.loads(status.stdout)["polls"] == 2


def test_wait_on_a_failed_job_exits_1(env: dict[str, str]) -> None:
    out = run(env, "create", "--voice-id", VOICE, "--text", "Fail me [[fail]]", "--job-id", "f-1")
    assert out.returncode == 0
    waited = run(env, "wait", "f-1", "--timeout", "30")
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["error"]["code"] == "akool_failed"


def test_batch_reports_each_file_and_error(env: dict[str, str], tmp_path: Path) -> None:
    rows = [
        {"input_text": "Batch line one.", "voice_id": VOICE},
        {"input_text": "Batch line two [[fail]].", "voice_id": VOICE},
        {"kind": "clone", "input_text": "Batch clone.", "voice_id": VOICE, "rate": "80%"},
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = run(env, "batch", str(path), "--timeout", "60")
    assert out.returncode == 1  # one job failed
    assert "2 succeeded, 1 failed" in out.stdout
    assert "akool_failed" in out.stdout and ".wav" in out.stdout
    assert "3/3" in out.stderr


def test_batch_ends_when_its_jobs_are_cancelled_while_it_watches(
    env: dict[str, str], sb: SandboxServer, tmp_path: Path
) -> None:
    # Given a batch whose jobs Akool keeps processing (far more polls than the test runs)
    ids = ["bc-1", "bc-2"]
    rows = [{"input_text": f"Held at Akool {i}.", "voice_id": VOICE, "job_id": i} for i in ids]
    path = tmp_path / "cancel.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    sb.configure(lifecycle={"mode": "polls", "polls": 1000})
    watching = subprocess.Popen(
        [CLI, "batch", str(path), "--timeout", "120"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # When they are cancelled while the batch watches them (once Akool has them)
        deadline = time.monotonic() + 30
        for job_id in ids:
            while json.loads(run(env, "status", job_id).stdout or "{}").get("state") != "submitted":
                assert time.monotonic() < deadline and watching.poll() is None
                time.sleep(0.2)
            cancelled = run(env, "cancel", job_id)
            assert cancelled.returncode == 0, cancelled.stderr
        out, err = watching.communicate(timeout=60)
    finally:
        sb.configure(lifecycle={"mode": "polls", "polls": 2})
        if watching.poll() is None:
            watching.kill()
            watching.communicate()
    # Then the watch ends at once (not at its timeout) and counts them as cancelled
    assert watching.returncode == 1, err  # not every job succeeded (4 would be the timeout)
    assert "0 succeeded, 0 failed, 2 cancelled, 0 never recorded" in out
    assert "2/2" in err and "cancelled 2" in err


def test_batch_refuses_a_bad_file_naming_the_line(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("input_text,voice_id,colour\nHello,abc,blue\n")
    out = run(env, "batch", str(path))
    assert out.returncode == 2
    assert "bad.csv:2: unknown column(s) colour" in out.stderr


def test_voices_lists_the_sandboxs_voices(env: dict[str, str]) -> None:
    out = run(env, "voices", "--from", "3", "--json")
    assert out.returncode == 0, out.stderr
    assert VOICE in {v["voice_id"] for v in json.loads(out.stdout)}


def test_retry_and_cancel_need_no_akool_credentials(env: dict[str, str]) -> None:
    # Given a failed job, and a command line without any AKOOL_* variable
    out = run(env, "create", "--voice-id", VOICE, "--text", "Fail [[fail]]", "--job-id", "f-2")
    assert out.returncode == 0, out.stderr
    assert run(env, "wait", "f-2", "--timeout", "30").returncode == 1
    bare = {k: v for k, v in env.items() if not k.startswith("AKOOL_")}
    # When it is retried, then cancelled once attempt 2 has ended
    retried = run(bare, "retry", "f-2")
    assert retried.returncode == 0, retried.stderr
    assert "attempt 2 enqueued" in retried.stdout
    waited = run(env, "wait", "f-2", "--timeout", "30")
    assert json.loads(waited.stdout)["error"]["code"] == "akool_failed"
    cancelled = run(bare, "cancel", "f-2")
    # Then the retry ran, and the cancel is refused for the job's state, not for credentials
    assert json.loads(run(bare, "status", "f-2").stdout)["attempt"] == 2
    assert cancelled.returncode == 2
    assert "has already ended (failed)" in cancelled.stderr, cancelled.stderr


def test_unreachable_redis_says_how_to_start_one(env: dict[str, str]) -> None:
    dead = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    out = run(dead, "status", "anything")
    assert out.returncode == 3
    assert "cannot reach Redis" in out.stderr and "redis-server" in out.stderr


def test_invalid_setting_is_named(env: dict[str, str]) -> None:
    out = run({**env, "POLL_DEADLINE": "soon"}, "status", "x")
    assert out.returncode == 2
    assert "POLL_DEADLINE must be a float" in out.stderr


def test_a_worker_without_credentials_refuses_to_start(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("AKOOL_")}
    out = subprocess.run(
        [str(Path(sys.executable).with_name("celery")), "-A", "worker", "worker"],
        env=bare,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "AKOOL_API_KEY" in out.stderr
