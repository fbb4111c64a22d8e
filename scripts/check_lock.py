"""Fails when requirements-dev.lock no longer satisfies pyproject.toml (`make lint` runs it).

Each requirement of the project and of its ``dev`` extra must be pinned in the lock, at a
version its range accepts: a range changed or a dependency added without `make lock` is caught
here, not by an install that quietly takes the old pins.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins(lock: str) -> dict[str, list[Version]]:
    """``name -> versions`` of every ``name==version`` line (a universal lock may pin one name
    twice, for different Python versions)."""
    found: dict[str, list[Version]] = {}
    for line in lock.splitlines():
        spec = line.split(";", 1)[0].strip()
        if not spec or spec.startswith(("#", "-")) or "==" not in spec:
            continue
        name, version = spec.split("==", 1)
        found.setdefault(canonicalize_name(name.split("[", 1)[0]), []).append(Version(version))
    return found


def problems(pyproject: dict[str, object], lock: str) -> list[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pinned = pins(lock)
    found = []
    for line in wanted:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": "dev"}):
            continue
        versions = pinned.get(canonicalize_name(req.name))
        if not versions:
            found.append(f"{req.name} is not in the lock")
        elif not all(req.specifier.contains(v, prereleases=True) for v in versions):
            shown = ", ".join(map(str, versions))
            found.append(f"{req.name} is pinned at {shown}, outside {req.specifier}")
    return found


def main() -> int:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = problems(pyproject, (ROOT / "requirements-dev.lock").read_text())
    for problem in found:
        print(f"requirements-dev.lock: {problem}; run `make lock`", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
