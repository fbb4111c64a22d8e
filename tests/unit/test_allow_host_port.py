"""``ALLOW_PRIVATE_HOSTS`` takes ``host:port``: an entry with a port opens that port of the host
only, so the demo's ``127.0.0.1:<sandbox port>`` no longer lets a ``notify_url`` reach Redis's
port on the same host (whose "answered 401" or "unreachable" in the timeline made a port
scanner). A bare host still opens every port (compatibility); the demo and the docs use ports.
Checked where a URL is validated (worker/akool/validation.py) and where a request is about to
connect (worker/egress/netguard.py, for downloads and notifications)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, allow_entry
from worker.akool.errors import ValidationError
from worker.akool.validation import validate_http_url
from worker.devstack.procs import worker_env
from worker.egress.netguard import UnsafeURL, check_url

SANDBOX = ("127.0.0.1:8080", "localhost:8080")


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("127.0.0.1", ("127.0.0.1", None)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("Sandbox.Test:443", ("Sandbox.Test", 443)),
        ("::1", ("::1", None)),
        ("[::1]", ("::1", None)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_an_entry_is_a_host_or_a_host_and_port(entry: str, parsed: tuple[str, int | None]) -> None:
    assert allow_entry(entry) == parsed


@pytest.mark.parametrize(
    "entry", ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "host:", ":80", "[::1", "[::1]x"]
)
def test_a_bad_entry_stops_the_settings_naming_the_variable(entry: str) -> None:
    with pytest.raises(SettingsError, match="ALLOW_PRIVATE_HOSTS"):
        Settings.from_env({"ALLOW_PRIVATE_HOSTS": f"localhost:8080,{entry}"})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://127.0.0.1/",
        "http://localhost:6379/x",
        "https://127.0.0.1/",
    ],
)
def test_a_host_port_entry_does_not_open_the_hosts_other_ports(url: str) -> None:
    with pytest.raises(ValidationError, match="notify_url"):
        validate_http_url("notify_url", url, allow_hosts=SANDBOX)
    with pytest.raises(UnsafeURL):
        check_url(url, SANDBOX)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8080/hook", SANDBOX),
        ("http://localhost:8080/hook", SANDBOX),
        ("http://127.0.0.1/hook", ("127.0.0.1:80",)),  # the scheme's default port
        ("https://127.0.0.1/hook", ("127.0.0.1:443",)),
        ("http://[::1]:9000/x", ("[::1]:9000",)),
        ("http://127.0.0.1:6379/", ("127.0.0.1",)),  # a bare host: every port, as before
    ],
)
def test_the_listed_port_is_allowed(url: str, allow: tuple[str, ...]) -> None:
    assert validate_http_url("notify_url", url, allow_hosts=allow) == url
    assert check_url(url, allow).url == url


def test_a_name_with_a_port_allows_what_it_resolves_to_on_that_port_only() -> None:
    # localhost resolves to 127.0.0.1 (and perhaps ::1): allowed by name, for its port.
    assert check_url("http://localhost:8080/", ("localhost:8080",)).port == 8080
    with pytest.raises(UnsafeURL):
        check_url("http://localhost:8081/", ("localhost:8080",))
    # An address entry with a port allows that address under any name, on that port only.
    assert check_url("http://localhost:8080/", ("127.0.0.1:8080", "::1:8080", "[::1]:8080"))
    with pytest.raises(UnsafeURL):
        check_url("http://localhost:8081/", ("127.0.0.1:8080", "[::1]:8080"))


def test_the_demo_and_test_workers_allow_the_sandboxs_port_only(tmp_path: Path) -> None:
    env = worker_env("redis://127.0.0.1:1/0", "http://127.0.0.1:43210", tmp_path)
    entries = env["ALLOW_PRIVATE_HOSTS"].split(",")
    assert entries and all(allow_entry(e)[1] is not None for e in entries), entries
    assert "127.0.0.1:43210" in entries
    settings = Settings.from_env(env)
    with pytest.raises(ValidationError):
        validate_http_url(
            "notify_url", "http://127.0.0.1:6379/", allow_hosts=settings.allow_private_hosts
        )
