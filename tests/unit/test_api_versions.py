"""Akool's API versions live in worker/akool/ only (its adapters and ``APIS``): a product module
elsewhere picks an adapter by a job's ``api`` and never compares against, branches on or lists a
version string (``api == "v4"``, ``{"v3": ...}``, ``choices=("v3", "v4")``). Adding a version is
then a module in worker/akool/, the sandbox, config/settings.py and the docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from config.settings import AKOOL_APIS
from worker.akool.speech import APIS

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("worker", "tasks", "config")
ALLOWED = ("worker/akool/", "config/settings.py")
VERSION = re.compile(r"v[0-9]+")
# Names a job's API goes by: compared with anything, they are a branch on the version.
API_NAMES = re.compile(r"(^|_)api(_version)?$")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def _is_api_name(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return isinstance(name, str) and bool(API_NAMES.search(name))


def _compares_an_api(node: ast.Compare) -> bool:
    sides = [node.left, *node.comparators]
    none = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
    return any(_is_api_name(s) for s in sides) and not none  # "api is None" is no version


def findings(source: str) -> list[str]:
    """What in ``source`` knows a version string: "line: what"."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            docs.update(id(v) for v in node.values)  # an f-string's text is prose
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and VERSION.fullmatch(node.value)
        ):
            out.append(f"{node.lineno}: the version literal {node.value!r}")
        elif isinstance(node, ast.Compare) and _compares_an_api(node):
            out.append(f"{node.lineno}: a comparison of an api: {ast.unparse(node)[:80]}")
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue):
            value = node.pattern.value
            if isinstance(value, ast.Constant) and VERSION.fullmatch(str(value.value)):
                out.append(f"{node.pattern.lineno}: a case on {value.value!r}")
    return out


def _product_files() -> list[Path]:
    return sorted(p for top in PRODUCT for p in (ROOT / top).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize(
    "source",
    [
        'if job.api == "v4":\n    pass',
        'x = "v3" if api != "v3" else None',
        'ok = api in ("v3", "v4")',
        'keys = {"v3": 1, "v4": 2}',
        'p.add_argument("--api", choices=("v3", "v4"))',
        'n = counts.get("v4", 0)',
        'match api:\n    case "v5":\n        pass',
        "if request.api == DEFAULT:\n    pass",
        "same = job.api is not other.api",
        'if "v4" in kinds:\n    pass',
        "if settings.akool_api_version == wanted:\n    pass",
    ],
)
def test_each_way_of_branching_on_a_version_is_found(source: str) -> None:
    assert findings(source), source


@pytest.mark.parametrize(
    "source",
    [
        '"""The v3 and v4 APIs."""',
        'help = "v4: an ISO 639 code"',
        'print(f"{n} of them VoiceLab v4")',
        "adapter = APIS[job.api]",
        "if api is None:\n    api = default",
        'label = "v4_detail"',
    ],
)
def test_prose_and_picking_an_adapter_are_not_branches(source: str) -> None:
    assert findings(source) == [], source


def test_the_scan_sees_the_versions_inside_worker_akool() -> None:
    """Not vacuous: the adapters themselves are found, so the scan reads real modules."""
    seen = {_rel(p) for p in (ROOT / "worker" / "akool").glob("*.py") if findings(p.read_text())}
    assert {"worker/akool/v3api.py", "worker/akool/v4api.py"} <= seen
    assert len(_product_files()) > 100


def test_no_product_module_outside_worker_akool_branches_on_a_version() -> None:
    offenders = {
        _rel(p): found
        for p in _product_files()
        if not _rel(p).startswith(ALLOWED) and (found := findings(p.read_text()))
    }
    assert offenders == {}, "pick the adapter with APIS[api] (worker/akool/speech.py) instead"


def test_the_settings_accept_exactly_the_registered_apis() -> None:
    assert tuple(APIS) == AKOOL_APIS
