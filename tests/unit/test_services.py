"""The composition root: built without Akool's credentials, everything but the Akool client
works; the client is made on first use, once, and without credentials that use names the
variables. The web service's dependencies are a view over the same root."""

from __future__ import annotations

import threading

import pytest

from config.settings import Settings, SettingsError
from worker.services import Once, build
from worker.web import deps

TOKEN = "a-test-token-0123456789"


def test_without_credentials_only_the_akool_client_refuses(redis_url: str) -> None:
    # Given services built from settings with no Akool credential
    svc = build(Settings(redis_url=redis_url))
    # When the job store is used, and then the Akool client asked for
    assert svc.jobs.find("no-such-job") is None
    with pytest.raises(SettingsError, match="AKOOL_API_KEY, or AKOOL_CLIENT_ID and AKOOL_CLI"):
        svc.akool  # noqa: B018 - the property makes the client
    # Then it refuses each time, naming the variables, and stays unmade
    with pytest.raises(SettingsError):
        svc.akool  # noqa: B018


def test_with_credentials_the_client_is_made_once(redis_url: str) -> None:
    svc = build(Settings(redis_url=redis_url, akool_api_key="key"))
    try:
        assert svc.akool is svc.akool
    finally:
        svc.akool.close()


def test_once_makes_one_value_for_racing_threads() -> None:
    made: list[object] = []
    gate = threading.Barrier(8)

    def make() -> object:
        made.append(object())
        return made[-1]

    once = Once(make)
    got: list[object] = []

    def use() -> None:
        gate.wait()
        got.append(once.get())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and got == made * 8


def test_the_web_dependencies_are_a_view_over_the_root(redis_url: str) -> None:
    d = deps.build(Settings(redis_url=redis_url, api_tokens=(TOKEN,)), send=lambda *_: None)
    svc = d.services
    assert (d.settings, d.redis, d.jobs, d.store, d.voices, d.estimator) == (
        svc.settings,
        svc.redis,
        svc.jobs,
        svc.store,
        svc.voices,
        svc.estimator,
    )
    assert d.request_problem is None  # no credentials: Akool judges
