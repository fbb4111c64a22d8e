"""The webhook is no padding oracle: Akool's signature covers only public values (the clientId
is the key), so anyone who knows the clientId can sign any ``dataEncrypt``. Every failure to
open the envelope (bad padding, not UTF-8, not JSON, not an object, no ``_id``, a status that
is not 1-4, a wrong signature) gets one and the same answer; the detail goes to the log."""

from __future__ import annotations

import base64
import json
import logging

import pytest
import redis

from config.settings import Settings
from worker.akool.crypto import encrypt, seal, sign
from worker.jobs import JobStore
from worker.web.webhook import Receiver

CLIENT_ID, SECRET = "client-id-for-the-oracle", "0123456789abcdef"


def _signed(data_encrypt: str) -> bytes:
    """A body anyone who knows the clientId can make: signed, whatever it encrypts."""
    ts, nonce = "1710757981609", "1529"
    body = {
        "signature": sign(CLIENT_ID, ts, nonce, data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": ts,
        "nonce": nonce,
    }
    return json.dumps(body).encode()


def _inside(plain: bytes, secret: str = SECRET) -> bytes:
    return _signed(encrypt(plain, secret, CLIENT_ID))


UNOPENABLE = {
    "bad padding": _signed(base64.b64encode(b"\0" * 32).decode()),
    "another key": _inside(b'{"_id": "ak-1", "status": 3}', secret="fedcba9876543210"),
    "not json inside": _inside(b"not json"),
    "not utf-8 inside": _inside(b"\xff\xfe\xfd"),
    "a list inside": _inside(b"[1, 2]"),
    "no _id inside": _inside(b'{"status": 3}'),
    "status 9 inside": _inside(b'{"_id": "ak-1", "status": 9}'),
    "not a block multiple": _signed(base64.b64encode(b"x" * 17).decode()),
    "bad signature": json.dumps(
        {**seal({"_id": "ak-1", "status": 3}, CLIENT_ID, SECRET, 1).to_json(), "nonce": "x"}
    ).encode(),
}


@pytest.fixture()
def receiver(redis_url: str) -> Receiver:
    settings = Settings.from_env(
        {"REDIS_URL": redis_url, "AKOOL_CLIENT_ID": CLIENT_ID, "AKOOL_CLIENT_SECRET": SECRET}
    )
    return Receiver(JobStore(redis.Redis.from_url(redis_url), settings), settings, lambda _: None)


def test_every_envelope_that_cannot_be_opened_gets_one_answer(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="akool_audio.webhook")
    answers = {case: receiver.handle(body) for case, body in UNOPENABLE.items()}
    assert len(set(answers.values())) == 1, answers
    assert next(iter(answers.values())).status == 401
    # The detail is logged for the operator, never the key.
    assert "bad padding" in caplog.text and "not JSON" in caplog.text
    assert SECRET not in caplog.text


def test_a_garbled_body_is_still_400_and_a_genuine_one_is_read(receiver: Receiver) -> None:
    assert receiver.handle(b"not json").status == 400
    assert receiver.handle(b'{"signature": "x"}').status == 400
    genuine = json.dumps(seal({"_id": "ak-2", "status": 2}, CLIENT_ID, SECRET, 1).to_json())
    assert receiver.handle(genuine.encode()).status == 200
