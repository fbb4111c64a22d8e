"""Pure checks of what we send to Akool, raising ``ValidationError(field, message)``.

Used by the client before any request and by the pipeline on task kwargs, so a bad job fails at
once with a message naming the field instead of costing a request (or credits).

Choices where Akool's docs are vague:

- ``rate``: the docs say "field value ranges (0%-100%)". ``0%`` (no speech at all) is
  meaningless, so 1 is the floor; above ``100%`` is unconfirmed, so it is refused. The form is
  exact: ASCII digits, no sign, no leading zero, no spaces, then ``%``.
- ``input_text``: Akool limits it to 5000 words; we count words as ``str.split()`` does and also
  cap characters (50,000) so a huge string is refused before it is split or sent. C0 control
  characters other than tab, LF and CR, DEL and lone surrogates are refused, and so is text
  with no visible character (only zero-width characters such as U+200B, say), which Akool
  would charge for.
- URLs: ASCII (RFC 3986: an international host in its IDNA ``xn--`` form, other characters
  percent-encoded), http(s) only, with a host, no ``user:password@``. A *literal* private, loopback,
  link-local or reserved address (in any form ``inet_aton`` accepts) or ``localhost`` is refused
  unless ``allow_hosts`` (``ALLOW_PRIVATE_HOSTS``) lists its host, bare (every port) or as
  ``host:port`` (that port only). Host names are not resolved: DNS is not checked here.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from worker.akool.errors import ValidationError
from worker.netaddr import allows_host, is_public, literal_ip, normal_host

__all__ = [
    "MAX_TEXT_CHARS",
    "MAX_URL_CHARS",
    "MAX_WORDS",
    "count_words",
    "validate_http_url",
    "validate_rate",
    "validate_text",
    "validate_voice_id",
]

MAX_WORDS = 5000
MAX_TEXT_CHARS = 50_000
MAX_URL_CHARS = 2048
MAX_VOICE_ID_CHARS = 128

_RATE = re.compile(r"([1-9][0-9]{0,2})%")
_VOICE_ID = re.compile(r"[A-Za-z0-9_-]+")
# C0 controls except \t \n \r, plus DEL; and lone surrogates, which cannot be sent as UTF-8.
_BAD_TEXT_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_BAD_URL_CHAR = re.compile(r"[\x00-\x20\x7f\\]")
# ASCII a URI never holds as itself (RFC 3986, 2.1-2.3): these and a % that is no %XX escape.
_NOT_URI_CHAR = re.compile(r'["<>^`{|}]|%(?![0-9A-Fa-f]{2})')


# Letters and symbols that show nothing: Hangul fillers, the blank braille pattern.
_BLANK_GRAPHIC = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(char: str) -> bool:
    """A letter, digit, punctuation mark or symbol that is not blank. Marks (accents) alone,
    format characters (U+200B..U+200F, U+2060, U+FEFF, U+00AD) and separators are not."""
    return unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_GRAPHIC


def _show(value: Any) -> str:
    """A short, safe rendering of a rejected value for a message."""
    try:
        if isinstance(value, str):
            shown = json.dumps(value[:60], ensure_ascii=False)
            return shown + ("..." if len(value) > 60 else "")
        text = repr(value)
    except Exception:  # e.g. an int too long for str(); the type is enough then
        return type(value).__name__
    text = text if len(text) <= 60 else text[:60] + "..."
    return f"{type(value).__name__} {text}"


def _require_str(field: str, value: Any, expected: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string ({expected}), got {_show(value)}")
    return value


def count_words(text: str) -> int:
    """Words as Akool's limit counts them: runs of non-space characters."""
    return len(text.split())


def validate_text(text: Any, max_words: int = MAX_WORDS, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Return ``text`` unchanged if it is a non-blank string Akool can speak, else raise."""
    field = "input_text"
    text_s = _require_str(field, text, "the text to speak")
    if len(text_s) > max_chars:
        raise ValidationError(field, f"must be at most {max_chars} characters, got {len(text_s)}")
    if not text_s.strip():
        raise ValidationError(field, "must not be empty or blank")
    bad = _BAD_TEXT_CHAR.search(text_s)
    if bad:
        raise ValidationError(
            field,
            f"must not contain control characters or lone surrogates, "
            f"found U+{ord(bad.group()):04X} at index {bad.start()}",
        )
    if not any(_visible(c) for c in text_s):
        # Zero-width spaces and joiners, BOMs, soft hyphens, blank fillers: Akool would be paid
        # for speaking nothing.
        raise ValidationError(
            field, "has no visible character (only spaces, zero-width or blank characters)"
        )
    words = count_words(text_s)
    if words > max_words:
        raise ValidationError(field, f"must be at most {max_words} words, got {words}")
    return text_s


def validate_rate(rate: Any) -> str:
    """Return ``rate`` unchanged if it is ``"N%"`` with an integer N from 1 to 100, else raise."""
    expected = 'must look like "100%" (an integer from 1 to 100 followed by %)'
    if not isinstance(rate, str):
        raise ValidationError("rate", f"{expected}, got {_show(rate)}")
    m = _RATE.fullmatch(rate)
    if m is None or int(m.group(1)) > 100:
        raise ValidationError("rate", f"{expected}, got {_show(rate)}")
    return m.string


def validate_voice_id(voice_id: Any) -> str:
    """Return ``voice_id`` unchanged if it is 1-128 characters of ``[A-Za-z0-9_-]``, else raise."""
    field = "voice_id"
    vid = _require_str(field, voice_id, "an id from the voice list")
    if not vid:
        raise ValidationError(field, "must not be empty")
    if len(vid) > MAX_VOICE_ID_CHARS:
        raise ValidationError(
            field, f"must be at most {MAX_VOICE_ID_CHARS} characters, got {len(vid)}"
        )
    if _VOICE_ID.fullmatch(vid) is None:
        raise ValidationError(
            field, f"must contain only letters, digits, _ and -, got {_show(vid)}"
        )
    return vid


def validate_http_url(field: str, url: Any, *, allow_hosts: Collection[str] = ()) -> str:
    """Return ``url`` unchanged if it is a public http(s) URL or its host is allowed."""
    url_s = _require_str(field, url, "an http(s) URL")
    if len(url_s) > MAX_URL_CHARS:
        raise ValidationError(
            field, f"must be at most {MAX_URL_CHARS} characters, got {len(url_s)}"
        )
    bad = _BAD_URL_CHAR.search(url_s)
    if bad:
        raise ValidationError(
            field, f"must not contain spaces, control characters or backslashes, got {_show(url_s)}"
        )
    bad = _NOT_URI_CHAR.search(url_s)
    if bad:
        raise ValidationError(
            field,
            f"is not a URI (RFC 3986): {bad.group()!r} must be percent-encoded, and % start a "
            f"%XX escape, got {_show(url_s)}",
        )
    if not url_s.isascii():
        # A URI is ASCII (RFC 3986): a host in its IDNA form, the rest percent-encoded.
        raise ValidationError(
            field,
            "must be ASCII: write an international host in its IDNA form (xn--...) and "
            f"percent-encode other characters, got {_show(url_s)}",
        )
    try:
        parts = urlsplit(url_s)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValidationError(field, f"is not a valid URL ({exc}), got {_show(url_s)}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(field, f"must be an http or https URL, got {_show(url_s)}")
    if "@" in parts.netloc:
        raise ValidationError(field, "must not contain user:password@ credentials")
    if not host or not normal_host(host):
        raise ValidationError(field, f"must have a host, got {_show(url_s)}")
    host = normal_host(host)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    if allows_host(host, port, allow_hosts):
        return url_s
    if host == "localhost" or host.endswith(".localhost"):
        raise ValidationError(field, f"must not point at localhost, got {_show(url_s)}")
    ip = literal_ip(host)
    if ip is not None and not is_public(ip):
        raise ValidationError(
            field,
            f"must not point at a private, loopback, link-local or reserved address, "
            f"got {_show(url_s)}",
        )
    return url_s
