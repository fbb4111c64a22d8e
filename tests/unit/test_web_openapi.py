"""The OpenAPI document covers every route of the app: a route added under /v1 or /metrics
without documenting it fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask

from config.settings import Settings
from worker.akool import requestschema as jobschema
from worker.jobs.request import ALLOWED
from worker.web import bearer, openapi
from worker.web.app import create_app
from worker.web.intake import allowed_fields

S = Settings(redis_url="redis://127.0.0.1:1/0", api_tokens=("a-test-token-0123456789",))
DOC = openapi.document()


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, lowercase method) of every route but HEAD and OPTIONS."""
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


def documented() -> set[tuple[str, str]]:
    return {(p, m) for p, ops in DOC["paths"].items() for m in ops}


def test_every_protected_route_of_the_app_is_documented() -> None:
    routes = {(p, m) for p, m in flask_routes(create_app(S)) if bearer.is_protected(p)}
    assert ("/v1/jobs", "post") in routes
    missing = routes - documented()
    assert not missing, f"document these in worker/web/openapi.py: {sorted(missing)}"


def test_the_open_routes_are_documented_as_open() -> None:
    for path in ("/healthz", "/akool/webhook"):
        for op in DOC["paths"][path].values():
            assert op["security"] == []
    assert DOC["security"] == [{"bearer": []}]
    assert DOC["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "one of API_TOKENS",
    }


def test_the_routes_others_build_are_documented_too() -> None:
    for path, method in [
        ("/v1/stats", "get"),
        ("/metrics", "get"),
        ("/v1/schedules", "get"),
        ("/v1/schedules", "post"),
        ("/v1/schedules/{name}", "delete"),
    ]:
        assert (path, method) in documented()


def test_every_operation_answers_something_and_every_ref_resolves() -> None:
    assert DOC["openapi"] == "3.1.0"
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            assert op["responses"] and op["summary"], (path, method)
            names = re.findall(r"{([a-z_]+)}", path)
            given = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert sorted(names) == sorted(given), (path, method)

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(DOC):
        assert ref.removeprefix("#/components/schemas/") in DOC["components"]["schemas"], ref


def test_the_request_variants_list_exactly_the_fields_the_api_accepts() -> None:
    schemas = DOC["components"]["schemas"]
    variants = [schemas[r["$ref"].rsplit("/", 1)[1]] for r in schemas["JobRequest"]["oneOf"]]
    assert len(variants) == len(list(jobschema.variant_names()))
    for kind in ALLOWED:
        props = {
            p for v in variants if v["properties"]["kind"]["const"] == kind for p in v["properties"]
        }
        assert props == set(allowed_fields(kind)), kind


def test_the_document_is_a_copy() -> None:
    openapi.document()["paths"].clear()
    assert openapi.document()["paths"]


def test_every_operation_has_its_own_operation_id_and_the_shared_answers() -> None:
    ids = [op["operationId"] for ops in DOC["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids)
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "421" in codes, (path, method)
            if op.get("security") != []:
                assert {"401", "429"} <= codes, (path, method)
                assert "Retry-After" in op["responses"]["429"]["headers"]
    created = DOC["paths"]["/v1/jobs"]["post"]["responses"]
    assert "Location" in created["202"]["headers"] and "Location" in created["200"]["headers"]
    assert {"403", "413", "415"} <= set(created)


def test_the_document_is_valid_openapi_31_and_rate_has_no_default() -> None:
    from openapi_spec_validator import validate

    validate(DOC)
    for name in jobschema.variant_names():
        for prop in DOC["components"]["schemas"][name]["properties"].values():
            assert "default" not in prop, name


def test_the_notify_url_post_is_a_webhook_with_its_signature_headers() -> None:
    from worker.egress import notify

    hook = DOC["webhooks"]["jobFinished"]["post"]
    headers = {p["name"]: p for p in hook["parameters"] if p["in"] == "header"}
    source = Path(notify.__file__).read_text()
    for name in headers:
        assert name in source  # the headers the notifier really sends
    assert re.fullmatch(headers["X-Akool-Audio-Signature"]["schema"]["pattern"], "v1=" + "a" * 64)
