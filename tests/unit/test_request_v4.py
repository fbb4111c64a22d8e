"""The ``api`` kwarg and the VoiceLab (v4) fields of a job's request: parsed, validated and
stored; and the same fields in batch files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, SettingsError
from worker.cli import batch
from worker.jobs.record import request_fingerprint
from worker.jobs.request import InvalidRequest, from_record, parse_request

S = Settings.from_env({"ALLOW_PRIVATE_HOSTS": "127.0.0.1"})
S4 = Settings.from_env({"AKOOL_API_VERSION": "v4", "ALLOW_PRIVATE_HOSTS": "127.0.0.1"})
V3: dict[str, Any] = {"input_text": "Hello there.", "voice_id": "piTKgcLEGmPE4e6mEKli"}
V4: dict[str, Any] = {"input_text": "Hello there.", "voice_id": "hkfHEbBvdQFNX4uWHqRF", "api": "v4"}
SAMPLE = "https://x.test/me.mp3"


def test_api_defaults_to_akool_api_version() -> None:
    assert parse_request("create", V3, S).api == "v3"
    assert parse_request("create", V3, S4).api == "v4"
    assert parse_request("create", {**V3, "api": "v3"}, S4).api == "v3"
    assert parse_request("create", V4, S).api == "v4"


@pytest.mark.parametrize("bad", ["v5", "V4", 4, ""])
def test_api_must_be_v3_or_v4(bad: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request("create", {**V3, "api": bad}, S)
    assert caught.value.field == "api"


def test_settings_check_the_api_version_and_the_plan() -> None:
    with pytest.raises(SettingsError, match="AKOOL_API_VERSION"):
        Settings.from_env({"AKOOL_API_VERSION": "v5"})
    with pytest.raises(SettingsError, match="AKOOL_PLAN"):
        Settings.from_env({"AKOOL_PLAN": "enterprise"})
    assert Settings.from_env({"AKOOL_PLAN": "Pro Max"}).akool_plan == "Pro Max"


def test_a_v3_record_is_what_it_was_before_v4() -> None:
    record = parse_request("create", {**V3, "api": "v3"}, S).to_record()
    assert set(record) == {
        "kind",
        "input_text",
        "rate",
        "voice_id",
        "voice_url",
        "notify_url",
        "notify_task",
        "notify_queue",
    }
    # the same fingerprint as an identical request stored before the api kwarg existed
    assert request_fingerprint("create", record) == request_fingerprint(
        "create", parse_request("create", V3, S).to_record()
    )
    assert from_record(record).api == "v3"


def test_a_v4_record_keeps_its_api_and_options() -> None:
    kwargs = {
        **V4,
        "voice_options": {"speed": 0.9, "emotion": "happy"},
        "language_code": "zh",
        "extra_options": {"audio_setting": {"format": "wav", "sample_rate": 44100}},
    }
    request = parse_request("create", kwargs, S)
    record = request.to_record()
    assert record["api"] == "v4" and record["rate"] is None
    assert record["voice_options"] == {"speed": 0.9, "emotion": "happy"}
    assert from_record(json.loads(json.dumps(record))) == request


@pytest.mark.parametrize(
    "field",
    ["voice_options", "language_code", "extra_options"],
)
def test_v4_fields_need_api_v4(field: str) -> None:
    value = {"voice_options": {"speed": 1.0}, "language_code": "en", "extra_options": {}}[field]
    with pytest.raises(InvalidRequest) as caught:
        parse_request("create", {**V3, field: value}, S)
    assert caught.value.field == field and 'api="v4"' in str(caught.value)


def test_rate_is_refused_for_v4_naming_the_speed() -> None:
    for rate in ("100%", "80%"):
        with pytest.raises(InvalidRequest) as caught:
            parse_request("create", {**V4, "rate": rate}, S)
        assert caught.value.field == "rate" and "voice_options.speed" in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("create", {"voice_options": {"speed": 1.25}}, "voice_options.speed"),
        ("create", {"voice_options": {"speed": 0.6}}, "voice_options.speed"),
        ("create", {"voice_options": {"stability": 2}}, "voice_options.stability"),
        ("create", {"voice_options": {"volume": 200}}, "voice_options.volume"),
        ("create", {"voice_options": {"emotion": "calm"}}, "voice_options.emotion"),
        ("create", {"voice_options": {"pace": 1}}, "voice_options.pace"),
        ("create", {"language_code": "Deutsch"}, "language_code"),
        ("create", {"extra_options": {"audio_setting": {"format": "flac"}}}, "format"),
        ("create", {"extra_options": {"audio_setting": {"channel": 3}}}, "channel"),
        ("create", {"input_text": "é" * 5001}, "input_text"),  # the pro plan, in characters
        ("create", {"voice_id": None}, "voice_id"),
        ("create", {"source_voice_file": SAMPLE}, "source_voice_file"),
        ("clone", {"voice_id": None}, "source_voice_file"),
        ("clone", {"voice_id": None, "voice_url": SAMPLE, "source_voice_file": SAMPLE},
         "voice_url"),
        ("clone", {"source_voice_file": SAMPLE}, "source_voice_file"),  # and voice_id
        ("clone", {"voice_model_name": "Akool Multilingual 1"}, "voice_model_name"),
        ("clone", {"voice_id": None, "source_voice_file": "http://10.1.2.3/a.mp3"},
         "source_voice_file"),
        ("clone", {"voice_id": None, "source_voice_file": SAMPLE,
                   "voice_model_name": "Akool Multilingual 2"}, "voice_model_name"),
        ("clone", {"voice_id": None, "source_voice_file": SAMPLE,
                   "clone_options": {"gender": [3]}}, "voice_options.gender"),
    ],
)  # fmt: skip
def test_v4_fields_are_checked(kind: str, change: dict[str, Any], field: str) -> None:
    kwargs = {k: v for k, v in {**V4, **change}.items() if v is not None}
    with pytest.raises(InvalidRequest) as caught:
        parse_request(kind, kwargs, S)
    assert field in caught.value.field


def test_the_plan_sets_the_v4_character_limit_and_words_do_not_count() -> None:
    business = Settings.from_env({"AKOOL_PLAN": "business"})
    long_text = "a " * 6000  # 12 000 characters, 6 000 words: over v3's word limit
    assert parse_request("create", {**V4, "input_text": long_text}, business).api == "v4"
    with pytest.raises(InvalidRequest, match="5000 characters on Akool's pro plan"):
        parse_request("create", {**V4, "input_text": long_text}, S)


def test_a_v4_clone_takes_the_sample_under_either_name() -> None:
    base = {k: v for k, v in V4.items() if k != "voice_id"}
    by_new = parse_request(
        "clone",
        {
            **base,
            "source_voice_file": SAMPLE,
            "voice_model_name": "Akool Multilingual 3",
            "clone_options": {"gender": "Female", "language": "yue"},
            "voice_options": {"speed": 1.1},
        },
        S,
    )
    assert by_new.voice_url == SAMPLE and by_new.voice_model_name == "Akool Multilingual 3"
    assert by_new.clone_options == {"gender": ["Female"], "language": "yue"}
    by_old = parse_request("clone", {**base, "voice_url": SAMPLE}, S)
    assert by_old.voice_url == SAMPLE and by_old.rate is None
    assert parse_request("clone", V4, S).voice_id == V4["voice_id"]  # speaks at once


def test_batch_files_carry_the_api_and_json_options(tmp_path: Path) -> None:
    jsonl = tmp_path / "mixed.jsonl"
    lines = [
        {"input_text": "v3 line", "voice_id": "piTKgcLEGmPE4e6mEKli"},
        {**V4, "voice_options": {"speed": 0.8}},
        {"api": "v4", "input_text": "cloned", "source_voice_file": SAMPLE},
    ]
    jsonl.write_text("\n".join(json.dumps(line) for line in lines))
    items = batch.load(jsonl)
    assert [i.task for i in items] == ["audio.create", "audio.create", "audio.clone"]
    assert items[1].kwargs["voice_options"] == {"speed": 0.8} and items[1].kwargs["api"] == "v4"
    csv_file = tmp_path / "mixed.csv"
    csv_file.write_text(
        "api,input_text,voice_id,voice_options\n"
        'v4,Hello,hkfHEbBvdQFNX4uWHqRF,"{""speed"": 1.1}"\n'
        "v3,Hi,piTKgcLEGmPE4e6mEKli,\n"
    )
    rows = batch.load(csv_file)
    assert (
        rows[0].kwargs["voice_options"] == {"speed": 1.1} and "voice_options" not in rows[1].kwargs
    )
    for row in rows + items:
        parse_request(row.task.removeprefix("audio."), row.kwargs, S)  # all valid
    bad = tmp_path / "bad.csv"
    bad.write_text('api,input_text,voice_id,voice_options\nv4,Hi,x,"{nope"\n')
    with pytest.raises(batch.BatchFileError, match=r"bad\.csv:2: voice_options is not JSON"):
        batch.load(bad)


@pytest.mark.parametrize("base", [V3, V4], ids=["v3", "v4"])
@pytest.mark.parametrize("text", ["\u200b", "\u200b \u200c\u200d\ufeff", "\u2060\n\u00ad"])
def test_text_with_no_visible_character_is_refused_by_both_apis(
    base: dict[str, Any], text: str
) -> None:
    """Akool would be paid for speaking nothing: refused before anything is recorded or sent."""
    with pytest.raises(InvalidRequest) as got:
        parse_request("create", {**base, "input_text": text}, Settings.from_env({}))
    assert got.value.field == "input_text"
    assert "no visible character" in str(got.value)
