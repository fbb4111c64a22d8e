"""Akool webhook crypto: the signature check and AES-CBC decryption of ``dataEncrypt``.

Akool signs a callback with ``sha1(sorted([clientId, timestamp, nonce, dataEncrypt]).join(""))``
and encrypts its JSON payload with AES-CBC/PKCS7, key = client secret (16/24/32 bytes picks
AES-128/192/256), iv = the first 16 bytes of the clientId (Akool's "Webhook" docs page).
The inverse functions are here too, so the sandbox sends exactly what a receiver must accept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK_BITS = 128


class WebhookError(ValueError):
    """Raised when a webhook body is forged, garbled or cannot be decrypted with our keys."""


@dataclass(frozen=True, slots=True)
class WebhookEnvelope:
    """The four fields Akool POSTs to a ``webhookUrl``."""

    signature: str
    data_encrypt: str
    timestamp: str
    nonce: str

    @classmethod
    def from_json(cls, body: Any) -> WebhookEnvelope:
        if not isinstance(body, dict):
            raise WebhookError("webhook body must be a JSON object")
        missing = [k for k in ("signature", "dataEncrypt", "timestamp", "nonce") if k not in body]
        if missing:
            raise WebhookError(f"webhook body is missing {', '.join(missing)}")
        sig, data = body["signature"], body["dataEncrypt"]
        if not isinstance(sig, str) or not isinstance(data, str):
            raise WebhookError("webhook signature and dataEncrypt must be strings")
        # Akool documents nonce as a string but its own example sends a number: stringify both.
        try:
            fields = (sig, data, str(body["timestamp"]), str(body["nonce"]))
            for value in fields:
                value.encode("utf-8")  # a lone surrogate (JSON "\ud800") cannot be signed
        except ValueError as exc:  # UnicodeEncodeError, or an int too long for str()
            raise WebhookError("webhook fields must be short, valid UTF-8 text") from exc
        return cls(*fields)

    def to_json(self) -> dict[str, Any]:
        digits = self.timestamp.isascii() and self.timestamp.isdigit()
        ts: Any = int(self.timestamp) if digits else self.timestamp
        return {
            "signature": self.signature,
            "dataEncrypt": self.data_encrypt,
            "timestamp": ts,
            "nonce": self.nonce,
        }


def _key(client_secret: str) -> bytes:
    key = client_secret.encode("utf-8")
    if len(key) not in (16, 24, 32):
        raise WebhookError(
            f"client secret must be 16, 24 or 32 bytes for AES, got {len(key)} bytes"
        )
    return key


def _iv(client_id: str) -> bytes:
    # Akool's docs pad a short clientId with NUL bytes; real clientIds are 24 characters.
    return client_id.encode("utf-8")[:16].ljust(16, b"\0")


def sign(client_id: str, timestamp: str, nonce: str, data_encrypt: str) -> str:
    """The hex sha1 of the four values as strings, sorted and joined with no separator."""
    parts = sorted([str(client_id), str(timestamp), str(nonce), str(data_encrypt)])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def verify_signature(envelope: WebhookEnvelope, client_id: str) -> None:
    expected = sign(client_id, envelope.timestamp, envelope.nonce, envelope.data_encrypt)
    # Compare bytes: compare_digest raises TypeError for str with non-ASCII characters.
    given = envelope.signature.lower().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected.encode("ascii"), given):
        raise WebhookError("webhook signature does not match")


def encrypt(plaintext: bytes, client_secret: str, client_id: str) -> str:
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(_key(client_secret)), modes.CBC(_iv(client_id))).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode("ascii")


def decrypt(data_encrypt: str, client_secret: str, client_id: str) -> bytes:
    try:
        raw = base64.b64decode(data_encrypt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookError("dataEncrypt is not valid base64") from exc
    if not raw or len(raw) % 16:
        raise WebhookError("dataEncrypt is not a whole number of AES blocks")
    dec = Cipher(algorithms.AES(_key(client_secret)), modes.CBC(_iv(client_id))).decryptor()
    padded = dec.update(raw) + dec.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise WebhookError("dataEncrypt has bad padding (wrong key or corrupted data)") from exc


def seal(
    payload: dict[str, Any],
    client_id: str,
    client_secret: str,
    timestamp_ms: int,
    nonce: str | None = None,
) -> WebhookEnvelope:
    """Build the body Akool would POST for ``payload`` (used by the sandbox and tests)."""
    data = encrypt(json.dumps(payload, separators=(",", ":")).encode(), client_secret, client_id)
    nonce = nonce if nonce is not None else str(int.from_bytes(os.urandom(2), "big"))
    ts = str(timestamp_ms)
    return WebhookEnvelope(sign(client_id, ts, nonce, data), data, ts, nonce)


def open_envelope(body: Any, client_id: str, client_secret: str) -> dict[str, Any]:
    """Verify and decrypt a webhook body; raises WebhookError for anything not from Akool."""
    env = WebhookEnvelope.from_json(body)
    verify_signature(env, client_id)
    plain = decrypt(env.data_encrypt, client_secret, client_id)
    try:
        payload = json.loads(plain.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError, ...
        raise WebhookError("decrypted webhook payload is not JSON (wrong key?)") from exc
    if not isinstance(payload, dict):
        raise WebhookError("decrypted webhook payload is not a JSON object")
    return payload
