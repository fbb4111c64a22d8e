"""The web service described as OpenAPI 3.1, served at ``/v1/openapi.json``.

Every route of the app under ``/v1`` and ``/metrics`` must be here (tests/unit/test_web_openapi.py
fails otherwise), including those other modules add (stats, metrics, schedules).
"""

from __future__ import annotations

import copy
from typing import Any

from config.settings import Settings
from worker import __version__
from worker.akool.audiorequest import LEGACY_API
from worker.akool.requestschema import JOB_ID_PATTERN, METADATA, request_schemas
from worker.akool.speech import APIS
from worker.jobs import EventKind, JobState
from worker.maintenance.schedules import min_every
from worker.web.jsonerrors import ErrorCode
from worker.web.scheduleschema import schedule_schemas

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str | dict[str, Any] = "Error") -> dict[str, Any]:
    body = _ref(schema) if isinstance(schema, str) else schema
    return {"description": description, "content": {JSON: {"schema": body}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "a bad request: the error names the field",
        401: "no valid Bearer token",
        404: "no such job (or schedule)",
        405: "method not allowed",
        409: "refused in the current state, or the job_id exists with another request",
        413: "the body is larger than 64 KB",
        415: "the body is not sent as application/json",
        416: "a Range the service does not serve (several ranges, or past the end)",
        503: "Redis (or the voice cache) is unavailable",
    }
    return {str(c): _answer(text[c]) for c in (401, *codes)}


_NULL_STR = {"type": ["string", "null"]}
_NULL_NUM = {"type": ["number", "null"]}
_STATE: dict[str, Any] = {"enum": [s.value for s in JobState]}
_JOB_ID_PATTERN = JOB_ID_PATTERN
_JOB_ID: dict[str, Any] = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": _JOB_ID_PATTERN},
}

_NAME: dict[str, Any] = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "enum": [c.value for c in ErrorCode],
                        "description": "what went wrong, for a program to branch on: "
                        + "; ".join(f"`{c.value}` ({c.status}) {c.description}" for c in ErrorCode),
                    },
                    "message": {"type": "string", "description": "for a person; may change"},
                    "field": {"type": "string", "description": "the part of the request at fault"},
                },
            }
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["job_id", "state", "links"],
        "properties": {
            "job_id": {"type": "string"},
            "state": _STATE,
            "links": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in ("self", "cancel", "retry")},
            },
            "message": {"type": "string"},
        },
    },
    "Summary": {
        "type": "object",
        "description": "The job's result as every caller receives it (README, 'The result').",
        "properties": {
            "job_id": {"type": "string"},
            "state": _STATE,
            "akool_id": _NULL_STR,
            "audio_url": _NULL_STR,
            "file": _NULL_STR,
            "location": _NULL_STR,
            "download_url": {**_NULL_STR, "description": "fresh, valid DOWNLOAD_URL_TTL s"},
            "sha256": _NULL_STR,
            "bytes": {"type": ["integer", "null"]},
            "error": {
                "type": ["object", "null"],
                "properties": {"code": _NULL_STR, "message": _NULL_STR},
            },
            "attempt": {"type": "integer"},
            "api": {"enum": list(APIS)},
            "credits": {
                "type": ["number", "null"],
                "description": "v4: Akool's deduction_credit; null for v3",
            },
        },
    },
    "JobDetail": {
        "type": "object",
        "properties": {
            "job": {
                "allOf": [
                    _ref("Summary"),
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"type": "string"},
                            "created_at": {"type": "number"},
                            "updated_at": {"type": "number"},
                            "submitted_at": _NULL_NUM,
                            "completed_at": _NULL_NUM,
                            "deadline_at": _NULL_NUM,
                            "cancel_requested_at": _NULL_NUM,
                            "polls": {"type": "integer"},
                            "attempts": {
                                "type": "array",
                                "items": {"type": "object"},
                                "description": "earlier attempts: akool_id, state, error, times",
                            },
                            "akool_status": {"type": ["integer", "null"]},
                            "error_code": _NULL_STR,
                            "storage_error": _NULL_STR,
                            "notify_state": _NULL_STR,
                            "notify_task_state": _NULL_STR,
                        },
                    },
                ]
            },
            "request": {"type": "object", "description": "the request as recorded"},
            "timeline": {"type": "array", "items": _ref("Event")},
        },
    },
    "Event": {
        "type": "object",
        "required": ["t", "type"],
        "properties": {
            "t": {"type": "number", "description": "epoch seconds"},
            "type": {
                "enum": [k.value for k in EventKind],
                "description": "the kind of event (README, 'The timeline')",
            },
        },
        "additionalProperties": True,
    },
    "JobRow": {
        "type": "object",
        "properties": {
            "job_id": {"type": "string"},
            "kind": {"type": "string"},
            "state": _STATE,
            "voice": _NULL_STR,
            "created_at": {"type": "number"},
            "completed_at": _NULL_NUM,
            "polls": {"type": "integer"},
            "attempt": {"type": "integer"},
            "error_code": _NULL_STR,
            "duration": {**_NULL_NUM, "description": "seconds from accepted to final"},
        },
    },
    "JobPage": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": _ref("JobRow")},
            "next_cursor": {**_NULL_STR, "description": "pass as cursor for the next page"},
        },
    },
    "Changed": {
        "type": "object",
        "properties": {"job": _ref("Summary"), "message": {"type": "string"}},
    },
    "Voices": {
        "type": "object",
        "properties": {
            "voices": {"type": "array", "items": {"type": "object"}},
            "age": {"type": "number", "description": "seconds since the cache was refreshed"},
        },
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"enum": ["ok", "unavailable"]}, "redis": {"type": "string"}},
    },
    "Stats": {
        "type": "object",
        "description": (
            "jobs by state, queue depths and the age of each queue's oldest message, live "
            "workers, the shared rate limiter, Akool error codes in the last hour, warnings"
        ),
    },
    "Schedule": {
        "type": "object",
        "description": (
            "name, a cron expression or an interval, the request, a job id template; "
            "last and next run; entries from RECURRING_JOBS_FILE are marked and read-only"
        ),
    },
    "AkoolCallback": {
        "type": "object",
        "description": "Akool's envelope: dataEncrypt is the AES-CBC encrypted record, signature "
        "the sha1 of the four values (DESIGN, 'The remote API')",
        "required": ["signature", "dataEncrypt", "timestamp", "nonce"],
        "properties": {
            "signature": {"type": "string"},
            "dataEncrypt": {"type": "string"},
            "timestamp": {"type": ["string", "integer"]},
            "nonce": {"type": ["string", "integer"]},
        },
    },
    "WebhookAnswer": {
        "type": "object",
        "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
    },
}

PATHS: dict[str, Any] = {
    "/v1/jobs": {
        "post": {
            "summary": "Enqueue a job (validated like audio.create / audio.clone)",
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("JobRequest")}}},
            "responses": {
                "202": _answer("accepted and sent to the workers", "Accepted"),
                "200": _answer("this job_id exists with the same request", "Accepted"),
                **_errors(400, 409, 413, 415),
            },
        },
        "get": {
            "summary": "List jobs, newest first (with q: in job id order)",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "schema": SCHEMAS["Summary"]["properties"]["state"],
                },
                {
                    "name": "q",
                    "in": "query",
                    "description": "job id prefix",
                    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{0,128}(?!\n)$"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "a next_cursor of this filter (another is 400)",
                    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_=-]{0,512}(?!\n)$"},
                },
            ],
            "responses": {"200": _answer("one page", "JobPage"), **_errors(400)},
        },
    },
    "/v1/jobs/{job_id}": {
        "get": {
            "summary": "A job: its summary, request and timeline (wait=N holds it until the job "
            "is final or N seconds pass)",
            "parameters": [
                _JOB_ID,
                {
                    "name": "wait",
                    "in": "query",
                    "description": "hold the answer until the job is final, at most this long",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 60},
                },
                {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    **_answer("the job", "JobDetail"),
                    "headers": {"ETag": {"schema": {"type": "string"}}},
                },
                "304": {
                    "description": "unchanged since the ETag given in If-None-Match",
                    "headers": {"ETag": {"schema": {"type": "string"}}},
                },
                **_errors(400, 404),
            },
        }
    },
    "/v1/jobs/{job_id}/events": {
        "get": {
            "summary": "The job's timeline as Server-Sent Events, as it is written, ending after "
            "the event that ends the job; Last-Event-ID resumes",
            "parameters": [
                _JOB_ID,
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "one event per timeline event: id (its index), data (the "
                    "event as JSON, see Event)",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_errors(400, 404),
            },
        }
    },
    "/v1/jobs/{job_id}/audio": {
        "get": {
            "summary": "The job's result: a local file (Range supported) or a 307 to a fresh "
            "link to the object",
            "parameters": [
                _JOB_ID,
                {"name": "Range", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "the audio",
                    "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "206": {
                    "description": "the range asked for",
                    "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "307": {
                    "description": "on object storage: a link signed for DOWNLOAD_URL_TTL s",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **_errors(400, 404, 409, 416, 503),
            },
        }
    },
    "/v1/jobs/{job_id}/cancel": {
        "post": {
            "summary": "Cancel a job (an Akool job already submitted may still finish and be "
            "charged: Akool v3 has no cancel call)",
            "parameters": [_JOB_ID],
            "responses": {
                "202": _answer("cancelling or cancelled", "Changed"),
                **_errors(400, 404, 409),
            },
        }
    },
    "/v1/jobs/{job_id}/retry": {
        "post": {
            "summary": "Run a failed or cancelled job again as attempt N+1",
            "parameters": [_JOB_ID],
            "responses": {"202": _answer("accepted again", "Changed"), **_errors(400, 404, 409)},
        }
    },
    "/v1/voices": {
        "get": {
            "summary": "Akool's voices from the voice cache",
            "responses": {
                "200": _answer("the cached list", "Voices"),
                "503": _answer(
                    "unavailable: the voice cache is empty or stale (beat's "
                    "maintenance.refresh_voices fills it), or Redis does not answer"
                ),
            },
        }
    },
    "/v1/stats": {
        "get": {
            "summary": "The fleet at a glance",
            "responses": {"200": _answer("stats", "Stats")},
        }
    },
    "/v1/schedules": {
        "get": {
            "summary": "Recurring jobs, with their last and next run",
            "responses": {
                "200": _answer(
                    "the schedules",
                    {
                        "type": "object",
                        "properties": {"schedules": {"type": "array", "items": _ref("Schedule")}},
                    },
                )
            },
        },
        "post": {
            "summary": "Add a schedule (every running beat picks it up)",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("ScheduleSpec")}},
            },
            "responses": {
                "201": {
                    **_answer("added", "Schedule"),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "links": {
                        name: {
                            "operationId": op,
                            "parameters": {"name": "$response.body#/name"},
                        }
                        for name, op in (
                            ("GetSchedule", "getSchedule"),
                            ("Remove", "deleteSchedule"),
                        )
                    },
                },
                **_errors(400, 409, 413, 415),
            },
        },
    },
    "/v1/schedules/{name}": {
        "get": {
            "summary": "One schedule",
            "parameters": [_NAME],
            "responses": {"200": _answer("the schedule", "Schedule"), **_errors(400, 404)},
        },
        "delete": {
            "summary": "Remove a schedule added through the API (one of the file or the beat "
            "configuration is 409: it changes only there)",
            "parameters": [_NAME],
            "responses": {
                "200": _answer(
                    "removed", {"type": "object", "properties": {"deleted": _ref("Schedule")}}
                ),
                **_errors(400, 404, 409),
            },
        },
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Fleet-wide metrics in Prometheus' text format (computed from Redis)",
            "responses": {
                "200": {
                    "description": "metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": _answer("no valid Bearer token"),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness, and whether Redis answers (open, no token)",
            "security": [],
            "responses": {
                "200": _answer("Redis answers", "Health"),
                "503": _answer("Redis does not answer", "Health"),
            },
        }
    },
    "/akool/webhook": {
        "post": {
            "summary": "Akool's encrypted callbacks (open: checked by Akool's own signature)",
            "security": [],
            "requestBody": {"content": {JSON: {"schema": _ref("AkoolCallback")}}},
            "responses": {
                code: _answer(text, "WebhookAnswer")
                for code, text in (
                    ("200", "handled (also duplicates and non-final statuses)"),
                    ("400", "a garbled body"),
                    ("401", "a bad signature or a body our keys cannot decrypt"),
                    ("404", "an Akool id we do not know (yet)"),
                    ("413", "the body is larger than 64 KB"),
                    ("503", "the service has no Akool keys to check signatures with"),
                )
            },
        }
    },
}

#: One operationId per operation, for generated clients (a route without one fails a test).
# -- issue 24: metadata, batch_id, expected_attempt (self-contained, to move as a block) ------

EXPECTED_ATTEMPT: dict[str, Any] = {
    "name": "expected_attempt",
    "in": "query",
    "description": "the job's attempt as the caller saw it (or in the body); another: 409 "
    "stale_attempt, nothing done",
    "schema": {"type": "integer", "minimum": 1},
}


def add_metadata(schemas: dict[str, Any], paths: dict[str, Any]) -> None:
    """``metadata`` and ``batch_id`` in summaries, ``expected_attempt`` on cancel and retry
    (in requests: :func:`document`, whose request variants depend on the settings)."""
    summary = schemas["Summary"]["properties"]
    summary["metadata"] = {**METADATA, "description": "the request's metadata ({} when none)"}
    summary["batch_id"] = {**_NULL_STR, "description": "the batch it was posted in"}
    for action in ("cancel", "retry"):
        paths[f"/v1/jobs/{{job_id}}/{action}"]["post"]["parameters"].append(EXPECTED_ATTEMPT)


_BATCH_ID: dict[str, Any] = {**_JOB_ID, "name": "batch_id"}
BATCH_SCHEMAS: dict[str, Any] = {
    "BatchRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["jobs"],
        "properties": {
            "jobs": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {}},
            "metadata": {**METADATA, "type": ["object", "null"]},
            "batch_id": {
                "type": ["string", "null"],
                "pattern": _JOB_ID_PATTERN,
                "description": "a uuid4 hex when omitted; the same batch again is answered "
                "from the records",
            },
        },
        "description": "jobs: bodies as POST /v1/jobs takes, each judged alone (body up to 2 MB)",
    },
    "BatchAccepted": {
        "type": "object",
        "properties": {
            "batch_id": {"type": "string"},
            "jobs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "job_id": {"type": "string"},
                        "state": _STATE,
                        "error": {"type": "object"},
                    },
                },
                "description": "one per item, in order: {job_id, state} or {error}",
            },
            "links": {"type": "object"},
        },
    },
    "Batch": {
        "type": "object",
        "properties": {
            "batch_id": {"type": "string"},
            "created_at": {"type": "number"},
            "metadata": METADATA,
            "total": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "expired": {"type": "integer"},
            "done": {"type": "boolean", "description": "every job has ended"},
            "cancel_asked": {"type": "integer", "description": "cancel only"},
            "links": {"type": "object"},
        },
    },
}
BATCH_PATHS: dict[str, Any] = {
    "/v1/batches": {
        "post": {
            "summary": "Post up to 1,000 jobs at once, answered item by item",
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("BatchRequest")}}},
            "responses": {
                "202": _answer("the batch, each item's answer", "BatchAccepted"),
                "200": _answer("this batch_id exists: answered again", "BatchAccepted"),
                **_errors(400, 409, 413, 415),
            },
        }
    },
    "/v1/batches/{batch_id}": {
        "get": {
            "summary": "A batch: its jobs counted by state, and whether all ended",
            "parameters": [_BATCH_ID],
            "responses": {"200": _answer("the batch", "Batch"), **_errors(400, 404)},
        }
    },
    "/v1/batches/{batch_id}/cancel": {
        "post": {
            "summary": "Cancel every job of the batch that has not ended",
            "parameters": [_BATCH_ID],
            "responses": {"202": _answer("asked", "Batch"), **_errors(400, 404)},
        }
    },
}


def add_batches(schemas: dict[str, Any], paths: dict[str, Any]) -> None:
    """``/v1/batches`` and ``GET /v1/jobs?batch=ID``."""
    schemas.update(BATCH_SCHEMAS)
    paths.update(BATCH_PATHS)
    paths["/v1/jobs"]["get"]["parameters"].append(
        {"name": "batch", "in": "query", "description": "a batch id", "schema": {"type": "string"}}
    )


def add_voices_api(paths: dict[str, Any]) -> None:
    """``GET /v1/voices?api=v3|v4``."""
    paths["/v1/voices"]["get"]["parameters"] = [
        {"name": "api", "in": "query", "schema": {"enum": list(APIS), "default": LEGACY_API}}
    ]
    paths["/v1/voices"]["get"]["responses"].update(_errors(400, 503))


add_metadata(SCHEMAS, PATHS)
add_batches(SCHEMAS, PATHS)
add_voices_api(PATHS)


OPERATION_IDS: dict[tuple[str, str], str] = {
    ("/v1/jobs", "post"): "createJob",
    ("/v1/jobs", "get"): "listJobs",
    ("/v1/jobs/{job_id}", "get"): "getJob",
    ("/v1/jobs/{job_id}/events", "get"): "streamJobEvents",
    ("/v1/jobs/{job_id}/audio", "get"): "getJobAudio",
    ("/v1/jobs/{job_id}/cancel", "post"): "cancelJob",
    ("/v1/jobs/{job_id}/retry", "post"): "retryJob",
    ("/v1/voices", "get"): "listVoices",
    ("/v1/stats", "get"): "getStats",
    ("/v1/schedules", "get"): "listSchedules",
    ("/v1/schedules", "post"): "createSchedule",
    ("/v1/schedules/{name}", "get"): "getSchedule",
    ("/v1/schedules/{name}", "delete"): "deleteSchedule",
    ("/v1/openapi.json", "get"): "getOpenApiDocument",
    ("/metrics", "get"): "getMetrics",
    ("/healthz", "get"): "getHealth",
    ("/akool/webhook", "post"): "receiveAkoolWebhook",
    ("/v1/batches", "post"): "createBatch",
    ("/v1/batches/{batch_id}", "get"): "getBatch",
    ("/v1/batches/{batch_id}/cancel", "post"): "cancelBatch",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}


def _complete(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with what every operation shares: its operationId; on every operation, 421 (a
    Host the service does not answer to); on those behind the token, 401 and 429 (too many
    wrong tokens, with Retry-After); on every POST, 413 and 415; Location on a 202 of a job."""
    for path, ops in paths.items():
        for method, op in ops.items():
            op["operationId"] = OPERATION_IDS[(path, method)]
            answers = op["responses"]
            answers.setdefault("421", _answer("this service does not answer to that Host"))
            if op.get("security") != []:
                answers.setdefault("401", _answer("no valid Bearer token"))
                answers.setdefault(
                    "429", {**_answer("too many wrong tokens"), "headers": _RETRY_AFTER}
                )
            if method == "post" and path != "/akool/webhook":
                limit = "2 MB" if path == "/v1/batches" else "64 KB"
                answers.setdefault("413", _answer(f"the body is larger than {limit}"))
                answers.setdefault("415", _answer("the body is not sent as application/json"))
            if method == "post" and path != "/akool/webhook":
                answers.setdefault(
                    "403", _answer("a cross-site write, or a session's without CSRF")
                )
            if (path, method) == ("/v1/jobs", "post"):
                for status in ("200", "202"):
                    answers[status]["headers"] = {
                        "Location": {"schema": {"type": "string"}, "description": "the job's URL"}
                    }
                    answers[status]["links"] = {
                        name: {
                            "operationId": op,
                            "parameters": {"job_id": "$response.body#/job_id"},
                        }
                        for name, op in (
                            ("GetJob", "getJob"),
                            ("CancelJob", "cancelJob"),
                            ("RetryJob", "retryJob"),
                        )
                    }
    return paths


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "akool-audio-worker",
        "version": __version__,
        "description": (
            "Text to speech through Akool's Audio API: enqueue jobs, follow, cancel and retry "
            "them. Errors are {'error': {'code', 'message', 'field'}} (code from one list, "
            "the Error schema); bodies are at most 64 KB."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "one of API_TOKENS",
            }
        },
        "schemas": SCHEMAS,
    },
    "paths": _complete(PATHS),
    "webhooks": {
        "jobFinished": {
            "post": {
                "operationId": "jobFinished",
                "summary": "POSTed to a job's notify_url when it ends (README, 'Notifications'); "
                "retried on network errors, 5xx, 408 and 429 up to NOTIFY_MAX_ATTEMPTS",
                "parameters": [
                    {
                        "name": "X-Akool-Audio-Timestamp",
                        "in": "header",
                        "required": True,
                        "description": "unix seconds",
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                    {
                        "name": "X-Akool-Audio-Signature",
                        "in": "header",
                        "required": True,
                        "description": "v1=<hex HMAC-SHA256 of '{timestamp}.{body}' with "
                        "NOTIFY_SECRET>; check it with worker.egress.notify.verify",
                        "schema": {"type": "string", "pattern": "^v1=[0-9a-f]{64}$"},
                    },
                ],
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Summary")}}},
                "responses": {"2XX": {"description": "received; anything else is retried"}},
            }
        }
    },
}


def document(settings: Settings | None = None) -> dict[str, Any]:
    """A copy of the document (callers may change theirs), its request schemas for
    ``settings`` (the API a request without ``api`` gets, the plan, the word limit; the
    defaults without)."""
    doc = copy.deepcopy(DOCUMENT)
    # Without settings, their defaults (a dataclass's class attributes).
    given: Any = settings if settings is not None else Settings
    default_api, plan, words = given.akool_api_version, given.akool_plan, given.akool_max_words
    schemas = doc["components"]["schemas"]
    schemas.update(request_schemas(default_api, plan, words))
    schemas.update(schedule_schemas(min_every(given)))
    return doc
