"""The layout's rules, read from the source (README, "Layout"): each package imports only the
packages listed before it, no module imports itself back through others, config/ imports
nothing of ours, no Lua inside a .py file, only worker/jobs/ touches a job store's Redis
client, and no two modules of worker/, tasks/, config/ share a file name."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = [
    "config",
    "worker.backoff",
    "worker.netaddr",
    "worker.lua",
    "worker.akool",
    "worker.jobs",
    "worker.fleet",
    "worker.egress",
    "worker.storage",
    "worker.maintenance",
    "worker.services",
    "worker.pipeline",
    "worker.broker",
    "worker.celery",
    "tasks",
    "worker.web",
    "worker.cli",
    "sandbox",
    "worker.devstack",
]
# Imported inside a function when the command runs, never at import (README, "Layout").
LAZY_BACKWARDS = {("worker.cli", "sandbox"), ("worker.cli", "worker.devstack")}
OURS = ("worker", "tasks", "config", "sandbox")


def _modules() -> dict[str, Path]:
    found = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    return max((p for p in ORDER if module == p or module.startswith(p + ".")), key=len)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, imported at module level) for every import of ours in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            names = [n if n in MODULES else node.module for n in names]
        for name in names:
            if name.split(".")[0] in OURS and name != "worker":
                out.append((name, id(node) in top))
    return out


def _resolve(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def test_every_module_belongs_to_a_listed_package() -> None:
    assert all(m in ("worker", "tasks", "sandbox") or _package(m) for m in MODULES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in ("worker",)))
def test_a_package_imports_only_the_packages_before_it(module: str) -> None:
    src = _package(module)
    for name, at_top in _imports(MODULES[module]):
        dst = _package(_resolve(name))
        if src == dst:
            continue
        if (src, dst) in LAZY_BACKWARDS:
            assert not at_top, f"{module} imports {name} at import time"
            continue
        assert ORDER.index(dst) < ORDER.index(src), f"{module} ({src}) imports {name} ({dst})"


def test_no_import_cycle() -> None:
    graph = {m: {_resolve(n) for n, _ in _imports(p)} - {m, "worker"} for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        assert m not in path, " -> ".join([*path[path.index(m) :], m])
        if m in done:
            return
        for n in graph[m]:
            visit(n, [*path, m])
        done.add(m)

    for m in graph:
        visit(m, [])


def test_lua_lives_in_lua_files_only() -> None:
    call = "redis" + ".call("  # spelled apart, so this file is not one of them
    offenders = [m for m, p in MODULES.items() if call in p.read_text()]
    assert offenders == []
    assert len(list((ROOT / "worker" / "lua").glob("*.lua"))) >= 10


def test_only_the_job_store_touches_its_redis_client() -> None:
    # ``jobs._r``, ``jobs.r.`` and the same through one of its parts (``jobs.parking._r``)
    touch = re.compile(r"\.jobs(\.\w+)?\.(_r\b|r\.)")
    offenders = [
        m
        for m, p in MODULES.items()
        if not m.startswith("worker.jobs.") and touch.search(p.read_text())
    ]
    assert offenders == []
    assert touch.search("svc.jobs.parking._r.zadd") and touch.search("x.jobs.r.get")


def test_no_two_modules_share_a_file_name() -> None:
    names = Counter(
        p.name
        for m, p in MODULES.items()
        if m.split(".")[0] in ("worker", "tasks", "config") and p.name != "__init__.py"
    )
    assert [n for n, c in names.items() if c > 1] == []
