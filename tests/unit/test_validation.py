"""Input validation: valid inputs round-trip; junk is only ever a ValidationError with a field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.akool.errors import AkoolError, ValidationError
from worker.akool.validation import (
    MAX_TEXT_CHARS,
    validate_http_url,
    validate_rate,
    validate_text,
    validate_voice_id,
)

junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.lists(st.text(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
)
# Text a speaker would send: printable characters plus ordinary whitespace, with at least one
# visible character (text of only zero-width characters is refused).
_around = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\r\t "), max_size=150
)
speakable = st.tuples(_around, st.sampled_from("aZ9.!é漢ß"), _around).map("".join)
public_hosts = st.sampled_from(
    [
        "example.com",
        "cdn.example.org",
        "8.8.8.8",
        "[2606:4700::1111]",
        "drz0f01yeq1cx.cloudfront.net",
    ]
)


def _url(value: Any) -> str:
    return validate_http_url("webhook_url", value)


VALIDATORS: list[tuple[str, Callable[[Any], str]]] = [
    ("input_text", validate_text),
    ("rate", validate_rate),
    ("voice_id", validate_voice_id),
    ("webhook_url", _url),
]


# -- properties --------------------------------------------------------------------------------


@given(text=speakable)
def test_speakable_text_round_trips(text: str) -> None:
    assert validate_text(text) == text


@given(n=st.integers(1, 100))
def test_every_rate_from_1_to_100_round_trips(n: int) -> None:
    assert validate_rate(f"{n}%") == f"{n}%"


@given(vid=st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True))
def test_voice_ids_round_trip(vid: str) -> None:
    assert validate_voice_id(vid) == vid


@given(
    scheme=st.sampled_from(["http", "https", "HTTPS"]),
    host=public_hosts,
    port=st.none() | st.integers(1, 65535),
    path=st.from_regex(r"(/[A-Za-z0-9._~-]{0,12}){0,4}", fullmatch=True),
)
def test_public_http_urls_round_trip(scheme: str, host: str, port: int | None, path: str) -> None:
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"
    assert validate_http_url("voice_url", url) == url


@pytest.mark.parametrize(("field", "validate"), VALIDATORS, ids=[f for f, _ in VALIDATORS])
@given(value=junk)
def test_junk_passes_or_raises_only_validation_error(
    field: str, validate: Callable[[Any], str], value: Any
) -> None:
    try:
        result = validate(value)
    except ValidationError as exc:
        assert exc.field == field
        assert str(exc).startswith(f"{field}: ")
    else:
        assert result == value


@given(words=st.integers(1, 60), limit=st.integers(1, 60))
def test_word_limit_is_exact(words: int, limit: int) -> None:
    text = " ".join(["word"] * words)
    if words <= limit:
        assert validate_text(text, limit) == text
    else:
        with pytest.raises(ValidationError, match=f"at most {limit} words, got {words}"):
            validate_text(text, limit)


# -- a table of bad inputs ---------------------------------------------------------------------

BAD: list[tuple[Callable[[Any], str], Any, str, str]] = [
    # (validator, value, field, part of the message)
    (validate_text, None, "input_text", "must be a string"),
    (validate_text, b"bytes", "input_text", "must be a string"),
    (validate_text, "", "input_text", "empty or blank"),
    (validate_text, " \n\t\r ", "input_text", "empty or blank"),
    (validate_text, "\u200b\u200b\u200b", "input_text", "no visible character"),
    (validate_text, " \u200b\ufeff\u2060\u200d\u00ad ", "input_text", "no visible character"),
    (validate_text, "\u3164\u115f\u2800", "input_text", "no visible character"),
    (validate_text, "\u0301\u0308", "input_text", "no visible character"),
    (validate_text, "nul\x00byte", "input_text", "U+0000"),
    (validate_text, "bell\x07", "input_text", "U+0007"),
    (validate_text, "escape\x1b[31m", "input_text", "U+001B"),
    (validate_text, "del\x7f", "input_text", "U+007F"),
    (validate_text, "lone \ud800 surrogate", "input_text", "U+D800"),
    (validate_text, "word " * 5001, "input_text", "at most 5000 words, got 5001"),
    (validate_text, "x" * (MAX_TEXT_CHARS + 1), "input_text", "at most 50000 characters"),
    (validate_rate, "150%", "rate", 'got "150%"'),
    (validate_rate, "0%", "rate", 'must look like "100%"'),
    (validate_rate, "101%", "rate", "an integer from 1 to 100"),
    (validate_rate, "100", "rate", 'got "100"'),
    (validate_rate, " 100%", "rate", 'got " 100%"'),
    (validate_rate, "100% ", "rate", "must look like"),
    (validate_rate, "100%\n", "rate", "must look like"),
    (validate_rate, "050%", "rate", "must look like"),
    (validate_rate, "-5%", "rate", "must look like"),
    (validate_rate, "1.5%", "rate", "must look like"),
    (validate_rate, "\u0661\u0660\u0660%", "rate", "must look like"),  # Arabic-Indic 100
    (validate_rate, 100, "rate", "got int 100"),
    (validate_rate, None, "rate", "got NoneType None"),
    (validate_voice_id, "", "voice_id", "must not be empty"),
    (validate_voice_id, "a" * 129, "voice_id", "at most 128"),
    (validate_voice_id, "has space", "voice_id", "letters, digits"),
    (validate_voice_id, "../etc/passwd", "voice_id", "letters, digits"),
    (validate_voice_id, "voice\n", "voice_id", "letters, digits"),
    (validate_voice_id, 123, "voice_id", "must be a string"),
    (_url, "file:///etc/passwd", "webhook_url", "http or https"),
    (_url, "javascript:alert(1)", "webhook_url", "http or https"),
    (_url, "ftp://example.com/x", "webhook_url", "http or https"),
    (_url, "data:text/plain,hi", "webhook_url", "http or https"),
    (_url, "example.com/hook", "webhook_url", "http or https"),
    (_url, "http://", "webhook_url", "must have a host"),
    (_url, "http://user:pw@example.com/", "webhook_url", "user:password@"),
    (_url, "http://localhost:8000/hook", "webhook_url", "localhost"),
    (_url, "http://api.localhost/hook", "webhook_url", "localhost"),
    (_url, "http://127.0.0.1/hook", "webhook_url", "private, loopback"),
    (_url, "http://127.1/hook", "webhook_url", "private, loopback"),
    (_url, "http://2130706433/hook", "webhook_url", "private, loopback"),
    (_url, "http://0x7f000001/hook", "webhook_url", "private, loopback"),
    (_url, "http://10.1.2.3/hook", "webhook_url", "private, loopback"),
    (_url, "http://192.168.0.1/hook", "webhook_url", "private, loopback"),
    (_url, "http://169.254.169.254/latest/meta-data", "webhook_url", "link-local"),
    (_url, "http://0.0.0.0/", "webhook_url", "reserved"),
    (_url, "http://[::1]/", "webhook_url", "private, loopback"),
    (_url, "http://[::ffff:10.0.0.1]/", "webhook_url", "private, loopback"),
    (_url, "http://[fe80::1]/", "webhook_url", "private, loopback"),
    (_url, "http://224.0.0.1/", "webhook_url", "private, loopback"),
    (_url, "http://example.com:99999/", "webhook_url", "not a valid URL"),
    (_url, "http://[::1/", "webhook_url", "not a valid URL"),
    (_url, "http://exa mple.com/", "webhook_url", "spaces"),
    (_url, "http://example.com\\@evil.com/", "webhook_url", "backslashes"),
    (_url, "https://example.com/" + "a" * 2048, "webhook_url", "at most 2048"),
    (_url, 42, "webhook_url", "must be a string"),
]


@pytest.mark.parametrize(
    ("validate", "value", "field", "message"),
    BAD,
    ids=[f"{f}-{i}" for i, (_, _, f, _) in enumerate(BAD)],
)
def test_bad_inputs_name_the_field(
    validate: Callable[[Any], str], value: Any, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        validate(value)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert message in str(info.value)


def test_the_rate_message_shows_the_expected_form() -> None:
    with pytest.raises(ValidationError) as info:
        validate_rate("150%")
    assert str(info.value) == (
        'rate: must look like "100%" (an integer from 1 to 100 followed by %), got "150%"'
    )


def test_validation_error_is_a_value_error_and_an_akool_error() -> None:
    with pytest.raises(ValidationError) as info:
        validate_rate("x")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AkoolError)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/x"]
)
def test_allow_hosts_admits_a_private_host(url: str) -> None:
    allow = ("127.0.0.1", "localhost", "::1")
    assert validate_http_url("webhook_url", url, allow_hosts=allow) == url


def test_allow_hosts_does_not_admit_other_spellings_of_the_host() -> None:
    with pytest.raises(ValidationError):
        validate_http_url("webhook_url", "http://127.1/", allow_hosts=("127.0.0.1",))


def test_a_long_word_count_is_refused_by_characters_before_splitting() -> None:
    with pytest.raises(ValidationError, match="characters"):
        validate_text("a " * MAX_TEXT_CHARS)
