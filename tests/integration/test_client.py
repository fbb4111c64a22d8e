"""AkoolClient against the real sandbox over loopback: every endpoint, both auth modes, faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sandbox import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer
from tests.support.redis import free_port
from worker.akool import AkoolClient, AudioStatus, MemoryTokenCache, errors

TEXT = "Hello from the sandbox, this is a test of the Akool client."
ClientFactory = Callable[..., AkoolClient]


class Sleeps(list[float]):
    """An injected ``sleep`` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def sb(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox(lifecycle={"mode": "immediate"})


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture()
def make_client(sb: SandboxServer, sleeps: Sleeps) -> Iterator[ClientFactory]:
    """Build clients for ``auth`` "key" or "token"; all are closed after the test."""
    made: list[AkoolClient] = []

    def make(auth: str = "key", **kwargs: Any) -> AkoolClient:
        creds: dict[str, Any] = (
            {"api_key": DEFAULT_API_KEY}
            if auth == "key"
            else {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
        )
        kwargs.setdefault("sleep", sleeps)
        client = AkoolClient(sb.url, **creds, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def requests_to(sb: SandboxServer, endpoint: str) -> int:
    return int(sb.stats()["requests"][endpoint])


def fault(endpoint: str, kind: str, times: int = 1, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "kind": kind, "times": times, **extra}


AUTH = pytest.mark.parametrize("auth", ["key", "token"])


# -- every endpoint, both auth modes ----------------------------------------------------------


@AUTH
def test_list_voices_by_source(make_client: ClientFactory, auth: str) -> None:
    client = make_client(auth)
    both = client.list_voices()
    official = client.list_voices(3)
    mine = client.list_voices(4)
    assert official and all(v.source == 3 for v in official)
    assert all(v.source == 4 for v in mine)
    assert {v.voice_id for v in both} == {v.voice_id for v in official + mine}
    assert all(v.voice_id and v.raw["voice_id"] == v.voice_id for v in both)


@AUTH
def test_create_then_get_when_completed_at_once(
    sb: SandboxServer, make_client: ClientFactory, auth: str
) -> None:
    client = make_client(auth)
    voice = client.list_voices(3)[0]
    # When the sandbox completes jobs immediately, create may already answer status 3
    job = client.create_audio(TEXT, voice.voice_id, rate="90%")
    assert job.id
    assert job.status in (AudioStatus.QUEUEING, AudioStatus.PROCESSING, AudioStatus.COMPLETED)
    done = client.get_audio(job.id)
    assert done.id == job.id
    assert done.status is AudioStatus.COMPLETED
    assert done.url and done.url.startswith("http")
    assert requests.get(done.url, timeout=5).status_code == 200


def test_create_then_poll_until_completed(sb: SandboxServer, make_client: ClientFactory) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": 2})
    client = make_client()
    job = client.create_audio(TEXT, client.list_voices(3)[0].voice_id)
    assert not job.status.is_final
    seen = [client.get_audio(job.id).status for _ in range(4)]
    assert seen[-1] is AudioStatus.COMPLETED
    assert requests_to(sb, "detail") == 4


@AUTH
def test_clone_by_voice_url_and_by_voice_id(
    sb: SandboxServer, make_client: ClientFactory, auth: str
) -> None:
    client = make_client(auth)
    voice = client.list_voices(3)[0]
    assert voice.preview is not None
    by_url = client.clone_audio(TEXT, voice_url=voice.preview, rate="100%")
    by_id = client.clone_audio(TEXT, voice_id=voice.voice_id)
    assert by_url.id != by_id.id
    for job in (by_url, by_id):
        assert client.get_audio(job.id).status is AudioStatus.COMPLETED
    assert requests_to(sb, "clone") == 2


def test_webhook_url_on_loopback_is_accepted_for_a_loopback_sandbox(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    client = make_client()
    hook = f"http://127.0.0.1:{free_port()}/hook"
    job = client.create_audio(TEXT, client.list_voices(3)[0].voice_id, webhook_url=hook)
    assert job.id


def test_get_audio_of_an_unknown_id_is_not_found(make_client: ClientFactory) -> None:
    with pytest.raises(errors.NotFound) as info:
        make_client().get_audio("000000000000000000000000")
    assert info.value.retryable is False


def test_status_4_is_a_failed_job_not_an_error(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    sb.configure(faults=[fault("create", "status_4")])
    client = make_client()
    job = client.create_audio(TEXT, client.list_voices(3)[0].voice_id)
    final = client.get_audio(job.id)
    assert final.status is AudioStatus.FAILED
    assert final.status.is_final
    assert final.raw["_id"] == job.id


# -- auth ------------------------------------------------------------------------------------


def test_get_token_is_fetched_once_and_cached(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    cache = MemoryTokenCache()
    client = make_client("token", token_cache=cache)
    token = client.get_token()
    assert token and cache.get() == token
    assert client.get_token() == token
    client.list_voices()
    client.list_voices()
    assert requests_to(sb, "token") == 1


def test_api_key_mode_never_fetches_a_token(sb: SandboxServer, make_client: ClientFactory) -> None:
    client = make_client("key")
    client.create_audio(TEXT, client.list_voices(3)[0].voice_id)
    assert requests_to(sb, "token") == 0


@AUTH
def test_exactly_one_auth_header_is_sent(
    sb: SandboxServer, make_client: ClientFactory, auth: str
) -> None:
    seen: list[requests.structures.CaseInsensitiveDict[str]] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request.headers))
    client = make_client(auth, session=session)
    client.get_audio(client.create_audio(TEXT, client.list_voices(3)[0].voice_id).id)
    session.close()
    api_calls = [h for h in seen if "x-api-key" in h or "Authorization" in h]
    assert len(api_calls) == 3  # voices, create, detail
    for headers in api_calls:
        assert ("x-api-key" in headers) != ("Authorization" in headers)
        if auth == "token":
            assert headers["Authorization"].startswith("Bearer ")
    token_calls = [h for h in seen if "x-api-key" not in h and "Authorization" not in h]
    assert len(token_calls) == (1 if auth == "token" else 0)


def test_a_revoked_token_is_refreshed_once(sb: SandboxServer, make_client: ClientFactory) -> None:
    # Given a client holding a token the sandbox then revokes
    client = make_client("token")
    client.list_voices()
    sb.configure(revoke_tokens=True)
    # When it calls again, Then it gets 1101, fetches a new token and repeats the call once
    assert client.list_voices()
    assert requests_to(sb, "token") == 2
    assert requests_to(sb, "voices") == 3


def test_a_revoked_token_on_create_repeats_the_rejected_post_once(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    client = make_client("token")
    voice_id = client.list_voices(3)[0].voice_id
    sb.configure(revoke_tokens=True)
    job = client.create_audio(TEXT, voice_id)
    assert client.get_audio(job.id).status is AudioStatus.COMPLETED
    stats = sb.stats()
    assert stats["requests"]["token"] == 2
    assert stats["requests"]["create"] == 2  # the first was refused with 1101, not processed
    assert stats["submissions"] == 1


def test_a_second_1101_raises(sb: SandboxServer, make_client: ClientFactory) -> None:
    client = make_client("token")
    client.get_token()
    sb.configure(faults=[fault("voices", "code", times=2, code=1101)])
    with pytest.raises(errors.AuthError) as info:
        client.list_voices()
    assert info.value.code == 1101
    assert requests_to(sb, "token") == 2
    assert requests_to(sb, "voices") == 2


def test_1101_with_an_api_key_is_not_refreshed(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    sb.configure(faults=[fault("voices", "code", code=1101)])
    with pytest.raises(errors.AuthError):
        make_client("key").list_voices()
    assert requests_to(sb, "token") == 0
    assert requests_to(sb, "voices") == 1


def test_a_wrong_api_key_is_an_auth_error(sb: SandboxServer) -> None:
    client = AkoolClient(sb.url, api_key="not-the-key", sleep=Sleeps())
    with client, pytest.raises(errors.AuthError) as info:
        client.list_voices()
    assert "not-the-key" not in str(info.value) + repr(info.value)


def test_wrong_client_credentials_fail_without_leaking_the_secret(sb: SandboxServer) -> None:
    client = AkoolClient(
        sb.url, client_id=DEFAULT_CLIENT_ID, client_secret="wrong-secret-value", sleep=Sleeps()
    )
    with client, pytest.raises(errors.AuthError) as info:
        client.list_voices()
    assert "wrong-secret-value" not in str(info.value) + repr(info.value)


def test_token_fetch_is_retried_like_a_get(
    sb: SandboxServer, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    sb.configure(faults=[fault("token", "http_500_html")])
    assert make_client("token").get_token()
    assert requests_to(sb, "token") == 2
    assert len(sleeps) == 1


# -- faults mapped to the error tree ----------------------------------------------------------

CODE_FAULTS = [
    (1005, errors.RateLimited, True),
    (1201, errors.TryLater, True),
    (1015, errors.TryLater, True),
    (1006, errors.QuotaExceeded, False),
    (1104, errors.QuotaExceeded, False),
    (1200, errors.AccountBanned, False),
    (1008, errors.NotFound, False),
    (1003, errors.InvalidParameter, False),
    (1102, errors.AuthError, False),
    (1017, errors.APIError, False),
]


def call(client: AkoolClient, endpoint: str, voice_id: str = "piTKgcLEGmPE4e6mEKli") -> Any:
    if endpoint == "voices":
        return client.list_voices()
    if endpoint == "create":
        return client.create_audio(TEXT, voice_id)
    if endpoint == "clone":
        return client.clone_audio(TEXT, voice_id=voice_id)
    if endpoint == "detail":
        return client.get_audio("65f8017f56559aa67f0ecde7")
    raise AssertionError(endpoint)


@pytest.mark.parametrize("endpoint", ["voices", "create", "clone", "detail"])
@pytest.mark.parametrize(("code", "cls", "retryable"), CODE_FAULTS)
def test_code_faults_map_to_classes(
    sb: SandboxServer,
    make_client: ClientFactory,
    endpoint: str,
    code: int,
    cls: type[errors.APIError],
    retryable: bool,
) -> None:
    # Given a fault that answers HTTP 200 with this code more times than the client retries
    sb.configure(faults=[fault(endpoint, "code", times=10, code=code)])
    client = make_client(get_retries=1)
    with pytest.raises(cls) as info:
        call(client, endpoint)
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.retryable is retryable
    assert info.value.http_status == 200
    assert info.value.endpoint and info.value.endpoint.split()[1].startswith("/api/open/v3/")
    # Then only a safe call was repeated, and only for a retryable code
    safe = endpoint in ("voices", "detail")
    assert requests_to(sb, endpoint) == (2 if safe and retryable else 1)


TRANSPORT_FAULTS: list[tuple[dict[str, Any], type[errors.AkoolError], int | None]] = [
    ({"kind": "http_500_html"}, errors.HTTPStatusError, 500),
    ({"kind": "http_500_html", "http_status": 503}, errors.HTTPStatusError, 503),
    ({"kind": "drop"}, errors.ConnectionFailed, None),
    ({"kind": "malformed_json"}, errors.BadResponse, 200),
    ({"kind": "slow", "delay": 1.0}, errors.ReadTimeout, None),
]


@pytest.mark.parametrize("endpoint", ["voices", "create", "clone", "detail"])
@pytest.mark.parametrize(
    ("rule", "cls", "http_status"),
    TRANSPORT_FAULTS,
    ids=["html500", "html503", "drop", "malformed_json", "slow"],
)
def test_transport_faults_map_to_classes(
    sb: SandboxServer,
    make_client: ClientFactory,
    sleeps: Sleeps,
    endpoint: str,
    rule: dict[str, Any],
    cls: type[errors.AkoolError],
    http_status: int | None,
) -> None:
    sb.configure(faults=[{"endpoint": endpoint, "times": 10, **rule}])
    client = make_client(read_timeout=0.3, get_retries=2)
    with pytest.raises(cls) as info:
        call(client, endpoint)
    assert info.value.retryable is True
    assert info.value.http_status == http_status
    if cls is errors.HTTPStatusError:
        assert "<" not in str(info.value)  # the HTML page is summarised, not dumped
        assert len(str(info.value)) < 400
    # GETs were retried get_retries times with backoff sleeps; POSTs were sent exactly once
    if endpoint in ("voices", "detail"):
        assert requests_to(sb, endpoint) == 3
        assert len(sleeps) == 2
        assert 0.2 <= sleeps[0] <= 0.3 and 0.4 <= sleeps[1] <= 0.6
    else:
        assert requests_to(sb, endpoint) == 1
        assert sleeps == []


@pytest.mark.parametrize("endpoint", ["voices", "detail"])
def test_a_get_is_retried_until_it_succeeds(
    sb: SandboxServer, make_client: ClientFactory, sleeps: Sleeps, endpoint: str
) -> None:
    client = make_client()
    job = client.create_audio(TEXT, client.list_voices(3)[0].voice_id)
    before = requests_to(sb, endpoint)
    sb.configure(faults=[fault(endpoint, "http_500_html", times=1), fault(endpoint, "drop")])
    result = client.list_voices() if endpoint == "voices" else client.get_audio(job.id)
    assert result
    assert requests_to(sb, endpoint) - before == 3
    assert len(sleeps) == 2


def test_a_slow_get_succeeds_when_it_is_under_the_read_timeout(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    sb.configure(faults=[fault("voices", "slow", delay=0.1)])
    assert make_client(read_timeout=2.0).list_voices()


@pytest.mark.parametrize("kind", ["http_500_html", "drop", "slow", "malformed_json"])
def test_create_is_never_retried(sb: SandboxServer, make_client: ClientFactory, kind: str) -> None:
    client = make_client(read_timeout=0.3, get_retries=5)
    voice_id = client.list_voices(3)[0].voice_id
    extra: dict[str, Any] = {"delay": 1.0} if kind == "slow" else {}
    sb.configure(faults=[fault("create", kind, **extra)])
    with pytest.raises(errors.AkoolError) as info:
        client.create_audio(TEXT, voice_id)
    assert info.value.retryable  # the task layer may decide to retry; the client did not
    assert requests_to(sb, "create") == 1


def test_a_refused_connection_is_connection_failed(sleeps: Sleeps) -> None:
    client = AkoolClient(f"http://127.0.0.1:{free_port()}", api_key="k", sleep=sleeps)
    with client, pytest.raises(errors.ConnectionFailed) as info:
        client.list_voices()
    assert info.value.retryable
    assert len(sleeps) == 2  # get_retries=2 by default


def test_an_unknown_path_is_a_404_http_status_error(sb: SandboxServer) -> None:
    from worker.akool.http import AkoolHTTP

    transport = AkoolHTTP(sb.url, connect_timeout=1, read_timeout=2)
    try:
        with pytest.raises(errors.HTTPStatusError) as info:
            transport.request("GET", "/api/open/v3/audio/nope", headers={"x-api-key": "k"})
    finally:
        transport.close()
    assert info.value.http_status == 404
    assert info.value.retryable is False


# -- validation happens before any request ----------------------------------------------------


BAD_CALLS: list[tuple[str, Callable[[AkoolClient], Any], str]] = [
    ("empty text", lambda c: c.create_audio("", "voice1"), "input_text"),
    ("nul in text", lambda c: c.create_audio("a\x00b", "voice1"), "input_text"),
    ("too many words", lambda c: c.create_audio("w " * 21, "voice1"), "input_text"),
    ("bad voice", lambda c: c.create_audio(TEXT, "bad voice!"), "voice_id"),
    ("rate 150%", lambda c: c.create_audio(TEXT, "voice1", rate="150%"), "rate"),
    ("rate 0%", lambda c: c.clone_audio(TEXT, voice_id="v", rate="0%"), "rate"),
    ("file webhook", lambda c: c.create_audio(TEXT, "v", webhook_url="file:///x"), "webhook_url"),
    (
        "private webhook",
        lambda c: c.create_audio(TEXT, "v", webhook_url="http://10.0.0.8/h"),
        "webhook_url",
    ),
    ("clone without voice", lambda c: c.clone_audio(TEXT), "voice_url"),
    (
        "clone with both",
        lambda c: c.clone_audio(TEXT, voice_url="https://x.com/a.mp3", voice_id="v"),
        "voice_url",
    ),
    ("clone js url", lambda c: c.clone_audio(TEXT, voice_url="javascript:x"), "voice_url"),
    ("empty audio id", lambda c: c.get_audio(""), "audio_model_id"),
    ("source 5", lambda c: c.list_voices(5), "source"),
    ("source True", lambda c: c.list_voices(True), "source"),
]


@AUTH
@pytest.mark.parametrize(("case", "bad_call", "field"), BAD_CALLS, ids=[c for c, _, _ in BAD_CALLS])
def test_validation_errors_send_nothing(
    sb: SandboxServer,
    make_client: ClientFactory,
    auth: str,
    case: str,
    bad_call: Callable[[AkoolClient], Any],
    field: str,
) -> None:
    client = make_client(auth, max_words=20)
    before = sb.stats()["requests"]
    with pytest.raises(errors.ValidationError) as info:
        bad_call(client)
    assert info.value.field == field
    assert sb.stats()["requests"] == before
