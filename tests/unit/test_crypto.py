"""Webhook crypto: seal/open_envelope round-trip, and every forgery or garble is a WebhookError."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.akool.crypto import (
    WebhookEnvelope,
    WebhookError,
    decrypt,
    encrypt,
    open_envelope,
    seal,
    sign,
)

CLIENT_ID = "AKDt8rWEczpYPzCGur2xE=="
SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes: AES-256, the shape of real API keys
PAYLOAD = {
    "_id": "65f8017f56559aa67f0ecde7",
    "status": 3,
    "type": "audio",
    "url": "https://x/a.mp3",
}

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=50)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=20), json_values, max_size=8)
keys = st.sampled_from([16, 24, 32]).flatmap(
    lambda n: st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=n, max_size=n)
)


def sealed(payload: dict[str, Any] = PAYLOAD, **overrides: Any) -> dict[str, Any]:
    body = seal(payload, CLIENT_ID, SECRET, 1710757981609, nonce="1529").to_json()
    body.update(overrides)
    return body


def flip_bit(b64: str, index: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index % len(raw)] ^= 1 << (index % 8)
    return base64.b64encode(bytes(raw)).decode()


@settings(max_examples=200)
@given(payload=payloads, secret=keys, client_id=st.text(max_size=40), ts=st.integers(0, 2**53))
def test_seal_then_open_returns_the_payload(
    payload: dict[str, Any], secret: str, client_id: str, ts: int
) -> None:
    # Given a payload sealed with any AES key size and a client id of any length
    body = seal(payload, client_id, secret, ts).to_json()
    # When it is opened with the same credentials, Then it is the same payload
    assert open_envelope(body, client_id, secret) == payload


@given(payload=payloads, secret=keys, other=keys)
def test_a_wrong_key_is_a_webhook_error(payload: dict[str, Any], secret: str, other: str) -> None:
    body = seal(payload, CLIENT_ID, secret, 1).to_json()
    if other == secret:
        return
    with pytest.raises(WebhookError):
        open_envelope(body, CLIENT_ID, other)


@given(index=st.integers(0, 10_000))
def test_a_flipped_ciphertext_bit_is_a_webhook_error(index: int) -> None:
    body = sealed()
    data = flip_bit(body["dataEncrypt"], index)
    # Re-sign, so the ciphertext itself (not the signature) is what is checked.
    resigned = sign(CLIENT_ID, str(body["timestamp"]), body["nonce"], data)
    tampered = dict(body, dataEncrypt=data, signature=resigned)
    try:
        result = open_envelope(tampered, CLIENT_ID, SECRET)
    except WebhookError:
        return
    # A flip in an early block can only garble the next block's text; it must still be JSON.
    assert result != PAYLOAD


@given(index=st.integers(0, 39), char=st.sampled_from("0123456789abcdef"))
def test_a_tampered_signature_is_a_webhook_error(index: int, char: str) -> None:
    body = sealed()
    sig = body["signature"]
    if sig[index] == char:
        return
    with pytest.raises(WebhookError, match="signature"):
        open_envelope(
            dict(body, signature=sig[:index] + char + sig[index + 1 :]), CLIENT_ID, SECRET
        )


def test_an_uppercase_signature_is_accepted() -> None:
    body = sealed()
    assert open_envelope(dict(body, signature=body["signature"].upper()), CLIENT_ID, SECRET)


def test_a_numeric_nonce_is_stringified_and_accepted() -> None:
    # Given the docs' second example, where nonce is the number 1529
    body = sealed(nonce=1529)
    assert open_envelope(body, CLIENT_ID, SECRET) == PAYLOAD


def test_a_string_timestamp_is_accepted() -> None:
    body = sealed()
    assert open_envelope(dict(body, timestamp=str(body["timestamp"])), CLIENT_ID, SECRET)


def _resign(data: str) -> dict[str, Any]:
    return sealed(dataEncrypt=data, signature=sign(CLIENT_ID, "1710757981609", "1529", data))


def _encrypted(plain: bytes) -> str:
    return encrypt(plain, SECRET, CLIENT_ID)


BAD_BODIES: list[tuple[str, Any]] = [
    ("a list", [1, 2]),
    ("a string", "signature=x"),
    ("none", None),
    ("a number", 42),
    ("empty dict", {}),
    ("missing nonce", {k: v for k, v in sealed().items() if k != "nonce"}),
    ("missing signature", {k: v for k, v in sealed().items() if k != "signature"}),
    ("numeric signature", sealed(signature=123)),
    ("dataEncrypt is a list", sealed(dataEncrypt=["x"])),
    ("nonce changed to a number", sealed(nonce=1530)),
    ("non-ascii signature", sealed(signature="é" * 40)),
    ("lone surrogate nonce", sealed(nonce="\ud800")),
    ("huge int timestamp", sealed(timestamp=10**5000)),
    ("garbled base64", _resign("!!!not base64!!!")),
    ("non-ascii base64", _resign("ü" * 16)),
    ("base64 missing padding", _resign(_encrypted(b'{"a":1}').rstrip("="))),
    ("empty ciphertext", _resign("")),
    ("not a block multiple", _resign(base64.b64encode(b"x" * 17).decode())),
    ("bad padding", _resign(base64.b64encode(b"\0" * 32).decode())),
    ("not json inside", _resign(_encrypted(b"not json"))),
    ("not utf-8 inside", _resign(_encrypted(b"\xff\xfe\xfd"))),
    ("a json list inside", _resign(_encrypted(b"[1, 2]"))),
    ("a json string inside", _resign(_encrypted(b'"hi"'))),
    ("huge int inside", _resign(_encrypted(b'{"a": ' + b"9" * 5000 + b"}"))),
    ("deep nesting inside", _resign(_encrypted(b"[" * 100_000 + b"]" * 100_000))),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_bad_bodies_are_webhook_errors(case: str, body: Any) -> None:
    with pytest.raises(WebhookError):
        open_envelope(body, CLIENT_ID, SECRET)


@pytest.mark.parametrize("secret", ["", "short", "x" * 17, "x" * 33])
def test_a_key_of_the_wrong_size_is_a_webhook_error(secret: str) -> None:
    with pytest.raises(WebhookError, match="16, 24 or 32"):
        decrypt(sealed()["dataEncrypt"], secret, CLIENT_ID)


@given(
    body=st.dictionaries(
        st.sampled_from(["signature", "dataEncrypt", "timestamp", "nonce"]), json_values
    )
)
def test_arbitrary_bodies_raise_only_webhook_error(body: dict[str, Any]) -> None:
    with contextlib.suppress(WebhookError):
        open_envelope(body, CLIENT_ID, SECRET)


def test_to_json_keeps_a_non_ascii_digit_timestamp_as_a_string() -> None:
    env = WebhookEnvelope("s", "d", "²", "n")
    assert env.to_json()["timestamp"] == "²"


def test_sign_is_sha1_of_sorted_strings() -> None:
    import hashlib

    expected = hashlib.sha1("".join(sorted(["cid", "12", "7", "data"])).encode()).hexdigest()
    assert sign("cid", "12", "7", "data") == expected
