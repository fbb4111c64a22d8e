"""The listing's cursor (``GET /v1/jobs?cursor=``) is ours or refused: a forged one is 400 with a
clear message (not 503 "cannot reach Redis"), and a cursor is bound to the filter it came from
(``state``, ``q``): given with another filter it is 400, never a page of jobs outside it."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from config.settings import Settings
from worker.web import deps
from worker.web.app import create_app

TOKEN = "a-listing-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.fixture()
def client(redis_url: str, tmp_path: Path) -> FlaskClient:
    s = Settings(redis_url=redis_url, api_tokens=(TOKEN,), audio_dir=tmp_path / "audio")
    app = create_app(s)
    jobs = app.extensions[deps.EXTENSION].jobs
    for i in range(6):
        jobs.create(f"a-{i}", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t")
        jobs.create(f"b-{i}", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t")
    for i in range(4):
        jobs.fail(f"a-{i}", "akool_failed", "status 4")
    return app.test_client()


def _page(client: FlaskClient, query: str) -> Any:
    got = client.get(f"/v1/jobs?{query}", headers=AUTH)
    return got.status_code, got.get_json()


@pytest.mark.parametrize(
    "cursor",
    [
        # With the filter the first query gives (none), so the fields themselves are checked.
        _cursor('{"m":"a-1","s":NaN,"f":[null,null]}'),
        _cursor('{"m":"a-1","s":Infinity,"f":[null,null]}'),
        _cursor('{"m":"a-1","s":' + "9" * 400 + ',"f":[null,null]}'),
        _cursor('{"m":"a-1","s":"1","f":[null,null]}'),
        _cursor('{"m":"a-1","s":true,"f":[null,null]}'),
        _cursor('{"m":"a-1","f":[null,null]}'),
        _cursor('{"m":7,"s":1,"f":[null,null]}'),
        _cursor('{"m":"' + "x" * 300 + '","s":1,"f":[null,null]}'),
        _cursor('{"m":"a-1","s":NaN}'),
        _cursor("[" * 300 + "]" * 80),
        _cursor("not json"),
        "AAAA",
    ],
)
def test_a_forged_cursor_is_400_naming_the_cursor(client: FlaskClient, cursor: str) -> None:
    for query in (f"cursor={cursor}", f"cursor={cursor}&q=a-", f"cursor={cursor}&state=failed"):
        status, doc = _page(client, query)
        assert status == 400, (query, doc)
        assert doc["error"]["field"] == "cursor"
        assert "cursor" in doc["error"]["message"]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("state=failed", "state=accepted"),
        ("state=failed", ""),
        ("", "state=failed"),
        ("q=a-", "q=b-"),
        ("q=a-", ""),
        ("q=a-&state=failed", "q=a-"),
    ],
)
def test_a_cursor_is_bound_to_its_filter(client: FlaskClient, first: str, then: str) -> None:
    status, doc = _page(client, f"{first}&limit=1")
    assert status == 200 and doc["next_cursor"]
    cursor = doc["next_cursor"]
    status, doc = _page(client, f"{then}&limit=50&cursor={cursor}")
    assert status == 400, doc
    assert doc["error"]["field"] == "cursor"
    assert "filter" in doc["error"]["message"]
    # The same filter goes on, and the next pages stay inside it.
    status, doc = _page(client, f"{first}&limit=50&cursor={cursor}")
    assert status == 200 and doc["jobs"]
    if "state=failed" in first:
        assert {j["state"] for j in doc["jobs"]} == {"failed"}
    if "q=a-" in first:
        assert all(j["job_id"].startswith("a-") for j in doc["jobs"])


def test_paging_through_every_filter_still_works(client: FlaskClient) -> None:
    for query in ("", "state=failed", "q=b-", "q=a-&state=failed"):
        seen: list[str] = []
        cursor = None
        while True:
            status, doc = _page(
                client, f"{query}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            )
            assert status == 200, doc
            seen += [j["job_id"] for j in doc["jobs"]]
            cursor = doc["next_cursor"]
            if cursor is None:
                break
        expected = {"": 12, "state=failed": 4, "q=b-": 6, "q=a-&state=failed": 4}[query]
        assert len(seen) == len(set(seen)) == expected, (query, seen)
