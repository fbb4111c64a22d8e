"""Every secret (and REDIS_URL, which may carry a password) can come from a file, as Docker and
Kubernetes mount secrets: ``NAME_FILE`` names it. Setting both ``NAME`` and ``NAME_FILE`` is an
error naming the variable, and so is a file that cannot be read."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from config.settings import Settings, SettingsError

# Each secret, the value its file holds, and how the settings show it.
FILED = [
    ("AKOOL_API_KEY", "sk-from-a-file", "akool_api_key", "sk-from-a-file"),
    ("AKOOL_CLIENT_SECRET", "cs-from-a-file", "akool_client_secret", "cs-from-a-file"),
    ("NOTIFY_SECRET", "notify-from-a-file", "notify_secret", "notify-from-a-file"),
    ("FLOWER_BASIC_AUTH", "ops:flower-from-a-file", "flower_basic_auth", "ops:flower-from-a-file"),
    ("API_TOKENS", "token-from-a-file-0001", "api_tokens", ("token-from-a-file-0001",)),
    ("REDIS_SENTINEL_PASSWORD", "sentinel-pass", "redis_sentinel_password", "sentinel-pass"),
    ("REDIS_URL", "redis://app:url-pass@10.0.0.5:6379/2", "redis_url",
     "redis://app:url-pass@10.0.0.5:6379/2"),
]  # fmt: skip
NEEDS = {"REDIS_SENTINEL_PASSWORD": {"REDIS_URL": "sentinel://127.0.0.1:26379/0"}}


@pytest.mark.parametrize(("name", "content", "attr", "value"), FILED, ids=[f[0] for f in FILED])
def test_a_secret_is_read_from_its_file(
    name: str, content: str, attr: str, value: object, tmp_path: Path
) -> None:
    path = tmp_path / name.lower()
    path.write_text(f"{content}\n")  # a trailing newline, as `echo` and editors leave it
    s = Settings.from_env({**NEEDS.get(name, {}), f"{name}_FILE": str(path)})
    assert getattr(s, attr) == value
    secret = "url-pass" if name == "REDIS_URL" else content.split(":")[-1]
    assert secret not in repr(s) and secret not in str(s.redacted())


@pytest.mark.parametrize("name", [f[0] for f in FILED])
def test_setting_both_a_secret_and_its_file_names_the_variable(name: str, tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("x")
    with pytest.raises(SettingsError, match=f"set {name} or {name}_FILE, not both"):
        Settings.from_env({name: "redis://x", f"{name}_FILE": str(path)})


def test_an_unreadable_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="REDIS_URL_FILE: cannot read"):
        Settings.from_env({"REDIS_URL_FILE": str(tmp_path / "missing")})


def test_every_secret_setting_can_come_from_a_file(tmp_path: Path) -> None:
    # Any secret setting, including one added later, is read from NAME_FILE with no more code.
    values = {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    for f in fields(Settings):
        if not (f.metadata.get("secret") or f.metadata.get("from_file")):
            continue
        name = f.name.upper()
        value = values.get(name, "file-secret-0123456789ab")
        path = tmp_path / name
        path.write_text(value)
        s = Settings.from_env({**NEEDS.get(name, {}), f"{name}_FILE": str(path)})
        got = getattr(s, f.name)
        assert got in (value, (value,)), name
