"""``python -m sandbox`` / ``akool-audio sandbox`` take their credentials from the environment a
worker reads (AKOOL_API_KEY, AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET) unless a flag says otherwise.

The first tests run the sandbox as a real process and ask it over HTTP; the table below them
checks the resolution rules without a process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from sandbox import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from sandbox.cli import add_arguments, credentials

ROOT = Path(__file__).resolve().parents[2]
API = "/api/open/v3"
ENV_ID = "ZW52LWNsaWVudC1pZA=="
ENV_KEY = "env-api-key-0123456789abcdef0123"  # 32 bytes: the sandbox's secret is an AES key
FLAG_ID = "ZmxhZy1jbGllbnQtaWQ="
FLAG_KEY = "flag-api-key-0123456789abcdef012"
ENV = {"AKOOL_API_KEY": ENV_KEY, "AKOOL_CLIENT_ID": ENV_ID, "AKOOL_CLIENT_SECRET": ENV_KEY}


def _environ(akool: dict[str, str]) -> dict[str, str]:
    """This process's environment without its AKOOL_* variables, plus ``akool``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    return {**env, **akool, "PYTHONUNBUFFERED": "1"}


def _popen(flags: list[str], akool: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environ(akool),
    )


@contextmanager
def running_sandbox(flags: list[str], akool: dict[str, str]) -> Iterator[str]:
    """The URL the sandbox process prints (``sandbox listening on URL``); stopped afterwards."""
    proc = _popen(flags, akool)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if not line.startswith("sandbox listening on http://127.0.0.1:"):
            proc.kill()
            pytest.fail(f"sandbox did not start: {line!r} {proc.stderr.read()[-2000:]!r}")
        yield line.rsplit(" ", 1)[1].strip()
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # loopback only: never through an environment proxy
        yield session


def key_code(http: requests.Session, url: str, api_key: str) -> int:
    """The envelope code of an authenticated call made with ``x-api-key: api_key``."""
    resp = http.get(f"{url}{API}/voice/list", headers={"x-api-key": api_key}, timeout=10)
    assert resp.status_code == 200
    return int(resp.json()["code"])


def token_code(http: requests.Session, url: str, client_id: str, secret: str) -> int:
    body = {"clientId": client_id, "clientSecret": secret}
    resp = http.post(f"{url}{API}/getToken", json=body, timeout=10)
    assert resp.status_code == 200
    return int(resp.json()["code"])


def test_the_environment_sets_the_credentials(http: requests.Session) -> None:
    with running_sandbox([], ENV) as url:
        assert key_code(http, url, ENV_KEY) == 1000
        assert key_code(http, url, DEFAULT_API_KEY) == 1101
        assert token_code(http, url, ENV_ID, ENV_KEY) == 1000
        assert token_code(http, url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET) == 1101


def test_flags_win_over_the_environment(http: requests.Session) -> None:
    flags = ["--client-id", FLAG_ID, "--client-secret", FLAG_KEY]
    with running_sandbox(flags, ENV) as url:
        assert key_code(http, url, FLAG_KEY) == 1000
        assert key_code(http, url, ENV_KEY) == 1101
        assert token_code(http, url, FLAG_ID, FLAG_KEY) == 1000
        assert token_code(http, url, ENV_ID, ENV_KEY) == 1101


def test_a_bad_secret_from_the_environment_is_named_and_not_shown() -> None:
    secret = "too-short-for-aes"
    proc = _popen([], {"AKOOL_API_KEY": secret})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert "AKOOL_API_KEY" in err and "16, 24 or 32 bytes" in err
    assert secret not in err


# -- the resolution rules, without a process ------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_API_KEY)),
        (
            [],
            {"AKOOL_API_KEY": " ", "AKOOL_CLIENT_ID": ""},
            (DEFAULT_CLIENT_ID,) + (DEFAULT_API_KEY,) * 2,
        ),
        ([], ENV, (ENV_ID, ENV_KEY, ENV_KEY)),
        ([], {"AKOOL_API_KEY": ENV_KEY}, (DEFAULT_CLIENT_ID, ENV_KEY, ENV_KEY)),
        ([], {"AKOOL_CLIENT_SECRET": ENV_KEY}, (DEFAULT_CLIENT_ID, ENV_KEY, ENV_KEY)),
        (
            [],
            {"AKOOL_CLIENT_SECRET": ENV_KEY, "AKOOL_API_KEY": "another-key"},
            (DEFAULT_CLIENT_ID, ENV_KEY, "another-key"),
        ),
        (["--client-secret", FLAG_KEY], ENV, (ENV_ID, FLAG_KEY, FLAG_KEY)),
        (["--api-key", FLAG_KEY], ENV, (ENV_ID, FLAG_KEY, FLAG_KEY)),
        (["--client-id", FLAG_ID], ENV, (FLAG_ID, ENV_KEY, ENV_KEY)),
        (
            ["--client-secret", FLAG_KEY, "--api-key", "flag-key"],
            {},
            (DEFAULT_CLIENT_ID, FLAG_KEY, "flag-key"),
        ),
    ],
)
def test_flags_then_environment_then_defaults(
    argv: list[str], env: dict[str, str], expected: tuple[str, str, str]
) -> None:
    creds = credentials(_args(*argv), env)
    assert (creds.client_id, creds.client_secret, creds.api_key) == expected
    assert ENV_KEY not in repr(creds) and FLAG_KEY not in repr(creds)


def test_akool_audio_sandbox_takes_the_same_flags() -> None:
    from worker.cli.main import sandbox_arguments

    args = sandbox_arguments(["--api-key", FLAG_KEY])
    assert credentials(args, ENV).api_key == FLAG_KEY
    assert credentials(sandbox_arguments([]), ENV).api_key == ENV_KEY
