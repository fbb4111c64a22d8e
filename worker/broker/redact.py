"""What task arguments look like in Flower, in events and in ``inspect``: readable, short, and
never a secret.

Flower shows the ``args``/``kwargs`` of the ``task-sent`` and ``task-received`` events, which
Celery fills from the message's ``argsrepr``/``kwargsrepr`` headers. Two hooks cover every
message: :class:`RedactingAMQP` writes safe headers for everything our own processes publish
(``send_task``, retries, chains, beat), and :func:`on_task_received` rewrites the reprs of every
message a worker receives, including those another backend sent with ``send_task`` and default
(full) reprs. Celery's own caveat stands: whoever can read the broker can read the message.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from celery.app.amqp import AMQP
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from worker.broker import compat

TEXT_KEEP = 60  # characters of input_text shown
STRING_KEEP = 200  # characters of any other string shown
REPR_MAX = 1024
_SECRET_KEY = re.compile(r"secret|token|passw|api_?key|signature|authori[sz]ation|cookie", re.I)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
MASK = "***"
# The signing parts of a presigned URL (a result's download_url): whoever holds them can read
# the object until it expires, so they are kept out of logs and events.
_SIGNED = re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&'\"\s,}]+")


def shorten(text: str, keep: int) -> str:
    if len(text) <= keep:
        return text
    return f"{text[:keep]}… ({len(text)} chars)"


def safe_url(url: str) -> str:
    """The URL without a password in its userinfo and without query or fragment values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return shorten(url, 40)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(f"{kv.partition('=')[0]}={MASK}" for kv in parts.query.split("&") if kv)
    fragment = MASK if parts.fragment else ""
    return shorten(urlunsplit((parts.scheme, netloc, parts.path, query, fragment)), STRING_KEEP)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` fit to show: secrets masked, URLs stripped, long text shortened."""
    if key and _SECRET_KEY.search(key) and value not in (None, "", False):
        return MASK
    if isinstance(value, str):
        if _URL.match(value):
            return safe_url(value)
        return shorten(value, TEXT_KEEP if key == "input_text" else STRING_KEEP)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    return value


def args_repr(args: Any) -> str:
    return str(saferepr(redact(list(args or ())), REPR_MAX))


def kwargs_repr(kwargs: Any) -> str:
    return str(saferepr(redact(dict(kwargs or {})), REPR_MAX))


class RedactingAMQP(AMQP):
    """Builds every outgoing message with redacted ``argsrepr``/``kwargsrepr``."""

    def as_task_v2(self, task_id: Any, name: Any, *rest: Any, **options: Any) -> Any:
        args = rest[0] if rest else options.get("args")
        kwargs = rest[1] if len(rest) > 1 else options.get("kwargs")
        options["argsrepr"] = args_repr(args)
        options["kwargsrepr"] = kwargs_repr(kwargs)
        return super().as_task_v2(task_id, name, *rest, **options)


def on_task_received(request: Any = None, **_: Any) -> None:
    """``task_received`` handler: runs before the worker sends the ``task-received`` event."""
    if request is None:
        return
    try:
        compat.set_reprs(request, args_repr(request.args), kwargs_repr(request.kwargs))
    except Exception:  # never let a display concern refuse a task
        compat.set_reprs(request, "(hidden)", "(hidden)")


def redact_text(text: str) -> str:
    """``text`` with the signing parts of any presigned URL in it masked."""
    return _SIGNED.sub(rf"\1{MASK}", text)


class RedactingRequest(Request):
    """A worker's request whose ``task-succeeded`` event (what Flower shows) carries the result
    without the signatures of its links; the caller's result keeps them."""

    def send_event(self, type: str, **fields: Any) -> None:
        if isinstance(fields.get("result"), str):
            fields["result"] = redact_text(fields["result"])
        super().send_event(type, **fields)


class RedactResultsFilter(logging.Filter):
    """For the logger ``celery.app.trace``: "Task ... succeeded ...: <result>" without the
    signatures of the result's links."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict) and isinstance(args.get("return_value"), str):
            record.args = {**args, "return_value": redact_text(args["return_value"])}
        return True
