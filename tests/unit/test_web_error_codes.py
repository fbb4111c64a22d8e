"""Every error the web service answers carries a ``code`` from one list (worker/web/jsonerrors.py
``ErrorCode``), for its status; README and the OpenAPI document list exactly that enum."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from worker.web import jsonerrors, openapi, serving
from worker.web.jsonerrors import ErrorCode, code_for, error_body

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "worker" / "web"


def api_errors() -> list[tuple[str, int, str | None, bool]]:
    """(where, status, explicit code name, has a field) of every ``ApiError(<status>, ...)``."""
    found = []
    for path in sorted(WEB.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApiError"):
                continue
            status = node.args[0]
            if not isinstance(status, ast.Constant):
                continue  # ApiError(exc.status, ...) re-raises one made elsewhere
            code = next((k.value for k in node.keywords if k.arg == "code"), None)
            name = code.attr if isinstance(code, ast.Attribute) else None
            field = len(node.args) > 2 or any(k.arg == "field" for k in node.keywords)
            found.append((f"{path.name}:{node.lineno}", int(status.value), name, field))
    return found


def test_the_scan_finds_the_views_refusals() -> None:
    statuses = {status for _, status, _, _ in api_errors()}
    assert {400, 401, 403, 404, 409, 413, 415, 421, 429, 503} <= statuses


@pytest.mark.parametrize("call", api_errors(), ids=lambda c: c[0])
def test_every_refusal_of_a_view_has_a_listed_code_for_its_status(
    call: tuple[str, int, str | None, bool],
) -> None:
    _, status, name, field = call
    code = ErrorCode[name] if name is not None else code_for(status, "f" if field else None)
    assert code.status == status


@pytest.mark.parametrize(
    "status", sorted({*jsonerrors.MESSAGES, *serving.REASONS, 408, 405, 421, 429})
)
def test_every_status_the_service_answers_has_a_code_of_that_status(status: int) -> None:
    assert code_for(status).status == status
    body = error_body(status, "m")
    assert ErrorCode(body["error"]["code"]).status == status


def test_the_servers_own_refusals_carry_a_code() -> None:
    for _, status, _ in serving.REFUSALS:
        _, _, body = serving.error_bytes(status, "m").partition(b"\r\n\r\n")
        assert ErrorCode(json.loads(body)["error"]["code"]).status == status
    assert b'"malformed_request"' in serving.error_bytes(400, "m")


def test_a_field_makes_a_400_invalid_field_and_the_body_invalid_body() -> None:
    assert code_for(400, "rate") is ErrorCode.INVALID_FIELD
    assert code_for(400, "body") is ErrorCode.INVALID_BODY
    assert code_for(400) is ErrorCode.INVALID_BODY


def test_readme_lists_every_code_with_its_status() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Error codes", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", section, re.M)
    assert rows == [(c.value, str(c.status)) for c in ErrorCode]


def test_the_openapi_document_lists_every_code() -> None:
    error = openapi.document()["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["properties"]["code"]["enum"] == [c.value for c in ErrorCode]
    assert "code" in error["required"]
    for code in ErrorCode:
        assert f"`{code.value}`" in error["properties"]["code"]["description"]
