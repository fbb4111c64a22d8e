"""The request schemas of ``POST /v1/jobs`` for the OpenAPI document: one variant per kind, API
and source of a clone, each saying exactly what the service accepts.

They are derived from what the validators use (worker/akool/validation.py, v4options.py), so a
range, an enum or a model cannot drift between the document and the service; tests/unit/
test_job_schema.py checks the README's examples and the refusals against both. What JSON Schema
cannot say is in the descriptions: v3's word limit (AKOOL_MAX_WORDS), the voice cache's checks,
which options a voice's model supports, and that a URL must not point at a private address.

``null`` is accepted where a field is optional and means "absent", as the service treats it.
``api`` omitted (or null) is AKOOL_API_VERSION: the variants of that API accept it absent, those
of the other API require it; the document is built from the service's settings.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable
from typing import Any, cast

from worker.akool import v4options as v4
from worker.akool.audiorequest import COMMON, Kind
from worker.akool.speech import APIS
from worker.akool.validation import (
    _BAD_TEXT_CHAR,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    MAX_VOICE_ID_CHARS,
    _visible,
)

# ``$`` also matches before a final newline in Python's re (which schemathesis and the jsonschema
# package use): ``(?!\n)`` before it keeps "a\n" out there too, and changes nothing in ECMA-262.
END = r"(?!\n)$"
JOB_ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,127}" + END
VOICE_ID_PATTERN = rf"^[A-Za-z0-9_-]{{1,{MAX_VOICE_ID_CHARS}}}" + END
RATE_PATTERN = r"^(100|[1-9][0-9]?)%" + END
LANGUAGE_PATTERN = r"^[a-z]{2,3}" + END
# RFC 3986's characters only, as the service takes them (an IDNA host, percent-encoding).
URL_PATTERN = (
    r"^(?=([A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*(?!\n)$)[Hh][Tt][Tt][Pp][Ss]?://[^\s@/\\?#]+([/?#][^\s\\]*)?"
    + END
)
# The variants, as the components of the document name them.
VARIANTS = (
    ("create", "v3", "CreateJobV3", None),
    ("create", "v4", "CreateJobV4", None),
    ("clone", "v3", "CloneJobV3FromSample", "voice_url"),
    ("clone", "v3", "CloneJobV3FromVoice", "voice_id"),
    ("clone", "v4", "CloneJobV4FromSample", "source_voice_file"),
    ("clone", "v4", "CloneJobV4FromVoiceUrl", "voice_url"),
    ("clone", "v4", "CloneJobV4FromVoice", "voice_id"),
)
#: Kwargs only a Celery caller may give (worker.jobs.request.CELERY_ONLY): never over HTTP.
_CELERY_ONLY = ("notify_queue", "notify_task")
#: Fields a schedule's request must not carry: the kind is its task, the job id its template.
_NOT_IN_SCHEDULES = ("kind", "job_id")


def _char(cp: int) -> str:
    # \uXXXX reads the same in Python's re and ECMA-262; an astral character goes as itself.
    return f"\\u{cp:04x}" if cp <= 0xFFFF else chr(cp)


def char_class(test: Callable[[str], bool]) -> str:
    """A regex character class of every code point (surrogates aside) that ``test`` accepts."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF or not test(chr(cp)):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = (_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)
    return "[" + "".join(parts) + "]"


_TEXT_PATTERN: str | None = None


def text_pattern() -> str:
    """``input_text`` as validate_text takes it: no control character, one visible at least."""
    global _TEXT_PATTERN
    if _TEXT_PATTERN is None:
        allowed = "[^" + char_class(lambda c: bool(_BAD_TEXT_CHAR.match(c)))[1:]
        _TEXT_PATTERN = f"^{allowed}*{char_class(_visible)}{allowed}*$"
    return _TEXT_PATTERN


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (an optional field: null means absent)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _strict(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    out = {"type": "object", "additionalProperties": False, "properties": properties}
    return {**out, "description": description} if description else out


def option_schemas() -> dict[str, Any]:
    """The typed option objects of VoiceLab (v4), from the constants its validators use."""
    numbers = {
        name: {"type": "number", "minimum": low, "maximum": high}
        for name, (low, high) in v4.NUMBER_RANGES.items()
    }
    models = {
        name.removeprefix("voice_options."): sorted(m)
        for name, m in v4.MODELS_OF.items()
        if name.startswith("voice_options.")
    }
    voice: dict[str, dict[str, Any]] = {
        **numbers,
        "speaker_boost": {"type": "boolean"},
        "emotion": {"enum": list(v4.EMOTIONS)},
        "volume": {
            "type": "integer",
            "minimum": v4.VOLUME_RANGE[0],
            "maximum": v4.VOLUME_RANGE[1],
        },
    }
    for name, schema in voice.items():
        schema["description"] = "models " + ", ".join(map(str, models[name]))
    assert tuple(voice) == tuple(sorted(voice, key=v4.VOICE_OPTIONS.index))
    setting = {
        "format": {"enum": list(v4.FORMATS)},
        "sample_rate": {"enum": list(v4.SAMPLE_RATES)},
        "bitrate": {"enum": list(v4.BITRATES)},
        "channel": {"enum": list(v4.CHANNELS)},
    }
    assert tuple(setting) == v4.AUDIO_SETTING
    tags = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    clone = {
        **{tag: {**tags, "description": "a tag or a list of tags"} for tag in v4.CLONE_OPTIONS[:4]},
        "remove_background_noise": {"type": "boolean"},
        "language": {"type": "string", "pattern": LANGUAGE_PATTERN},
        "clone_prompt": {"type": "string", "maxLength": v4.CLONE_PROMPT_MAX},
        "need_volume_normalization": {"type": "boolean"},
    }
    assert set(clone) == set(v4.CLONE_OPTIONS)
    return {
        "VoiceOptions": _strict(
            voice, "VoiceLab (v4) speech options; a voice whose model lacks one refuses it"
        ),
        "AudioSetting": _strict(setting, "models 3 only"),
        "ExtraOptions": _strict({"audio_setting": {"$ref": "#/components/schemas/AudioSetting"}}),
        "CloneOptions": _strict(clone, "the voice_options of VoiceLab's voice clone"),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(chars: int, note: str) -> dict[str, Any]:
    return {
        "type": "string",
        "maxLength": chars,
        "pattern": text_pattern(),
        "description": f"the text to speak: {note}; no control characters, one visible at least",
    }


def _fields(kind: str) -> frozenset[str]:
    """Every field a body of ``kind`` may name over HTTP, whatever its API."""
    names = COMMON.union(*(a.fields(cast(Kind, kind)) for a in APIS.values()))
    return frozenset({"kind", *names}) - frozenset(_CELERY_ONLY)


#: ``metadata``: the caller's own string pairs (worker/akool/audiorequest.py checks the same).
METADATA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 16,
    "propertyNames": {"minLength": 1, "maxLength": 40},
    "additionalProperties": {"type": "string", "maxLength": 500},
    "description": "the caller's own string pairs (an order id, a tenant), returned in the "
    "summary and every notification; never sent to Akool",
}


def _variant(kind: str, api: str, source: str | None, default_api: str) -> dict[str, Any]:
    url = {"type": "string", "format": "uri", "maxLength": MAX_URL_CHARS, "pattern": URL_PATTERN}
    voice_id = {"type": "string", "pattern": VOICE_ID_PATTERN}
    props: dict[str, Any] = {
        "kind": {"const": kind},
        "api": {"const": api},
        "input_text": _ref(f"InputText{api.upper()}"),
    }
    required = ["kind", "input_text"]
    if api == default_api:
        props["api"] = {
            "enum": [api, None],
            "description": f"AKOOL_API_VERSION ({api}) when omitted or null",
        }
    else:
        required.append("api")
    # The source of the speech (a clone's: a sample or a voice); the other is null or absent.
    samples = ("voice_url",) if api == "v3" else ("source_voice_file", "voice_url")
    if kind == "create" or source == "voice_id":
        props["voice_id"] = {**voice_id, "description": "a voice from GET /v1/voices"}
        required.append("voice_id")
        if kind == "clone":
            props.update({name: {"type": "null"} for name in samples})
    else:
        assert source is not None
        props[source] = {**url, "description": "the sample to clone, a public http(s) URL"}
        required.append(source)
        props["voice_id"] = {"type": "null"}
        if api == "v4":
            other = "voice_url" if source == "source_voice_file" else "source_voice_file"
            props[other] = {"type": "null", "description": "voice_url is v3's name of the sample"}
    if api == "v3":
        props["rate"] = _nullable(
            {
                "type": "string",
                "pattern": RATE_PATTERN,
                "description": '1% to 100%; "100%" when omitted',
            }
        )
    else:
        props["voice_options"] = _nullable(_ref("VoiceOptions"))
        props["language_code"] = _nullable(
            {"type": "string", "pattern": LANGUAGE_PATTERN, "description": "ISO 639, e.g. zh"}
        )
        props["extra_options"] = _nullable(_ref("ExtraOptions"))
        if source in ("source_voice_file", "voice_url"):
            props["voice_model_name"] = _nullable({"enum": list(v4.CLONE_MODELS)})
            props["clone_options"] = _nullable(_ref("CloneOptions"))
    props["job_id"] = _nullable(
        {
            "type": "string",
            "pattern": JOB_ID_PATTERN,
            "description": "idempotency key; a uuid4 hex when omitted",
        }
    )
    props["notify_url"] = _nullable({**url, "description": "POSTed the result (jobFinished)"})
    props["metadata"] = {**METADATA, "type": ["object", "null"]}
    # The service reads null as absent before it looks at the API: another API's field, or one
    # this variant does not take, may be null.
    props.update({name: {"type": "null"} for name in sorted(_fields(kind) - set(props))})
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": props,
    }


def request_schemas(default_api: str, plan: str, max_words: int) -> dict[str, Any]:
    """The components of ``JobRequest``: its variants, their option objects and the union."""
    plan = v4.plan_name(plan)
    variants = {
        name: _variant(kind, api, source, default_api) for kind, api, name, source in VARIANTS
    }
    chars = v4.PLAN_CHARS[plan]
    texts = {
        "InputTextV3": _text(
            MAX_TEXT_CHARS,
            f"at most {max_words} words (AKOOL_MAX_WORDS), {MAX_TEXT_CHARS} characters",
        ),
        "InputTextV4": _text(
            chars, f"at most {chars} characters on Akool's {plan} plan (AKOOL_PLAN)"
        ),
    }
    union = {
        "oneOf": [_ref(name) for name in variants],
        "description": (
            "One variant per kind (create, clone), API (v3 Audio, v4 VoiceLab) and, for a clone, "
            "its source (a sample or a voice); unknown fields are refused. notify_task and "
            "notify_queue are for Celery callers only. Not said here, checked by the service: "
            "the voice cache (an unknown voice, an option the voice's model lacks) and URLs "
            "that point at private addresses (ALLOW_PRIVATE_HOSTS)."
        ),
    }
    return {
        "JobRequest": union,
        **variants,
        **texts,
        **option_schemas(),
        **schedule_request_schemas(variants),
    }


def schedule_request_schemas(variants: dict[str, Any]) -> dict[str, Any]:
    """A schedule's ``request``: the variants of its task's kind without ``kind`` and
    ``job_id`` (the task names the one, the schedule's template makes the other)."""
    out: dict[str, Any] = {}
    for task_kind in ("create", "clone"):
        names = [name for kind, _, name, _ in VARIANTS if kind == task_kind]
        for name in names:
            variant = copy.deepcopy(variants[name])
            for field in _NOT_IN_SCHEDULES:
                variant["properties"].pop(field)
            variant["required"] = [f for f in variant["required"] if f not in _NOT_IN_SCHEDULES]
            out[f"Scheduled{name}"] = variant
        out[f"Scheduled{task_kind.title()}Request"] = {
            "oneOf": [_ref(f"Scheduled{name}") for name in names],
            "description": f"the kwargs of audio.{task_kind}: a job's body without kind and job_id",
        }
    return out


def variant_names() -> Iterable[str]:
    return (name for _, _, name, _ in VARIANTS)
