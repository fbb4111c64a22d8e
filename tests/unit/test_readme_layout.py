"""The README's Layout names every module of the tree and nothing else.

The block under "### Layout" has one entry per package directory: the directory's path (ending
in ``/``) at the start of a line, then its modules' names separated by commas; anything in
parentheses is description, and an indented line continues the entry above it. A module added,
moved or deleted without the README following fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "worker", "tasks", "sandbox")


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Layout", 1)[1]
    return section.split("```", 2)[1]


def _strip_parens(text: str) -> str:
    while True:
        stripped = re.sub(r"\([^()]*\)", "", text)
        if stripped == text:
            return text
        text = stripped


def documented() -> dict[str, set[str]]:
    """{package directory: the module names its entry lists}."""
    entries: dict[str, str] = {}
    current = None
    for line in _layout_block().splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            assert current is not None, f"a continuation line before any entry: {line!r}"
            entries[current] += " " + line
            continue
        path, _, rest = line.partition(" ")
        assert path.endswith("/"), f"an entry starts with a directory ending in '/': {line!r}"
        current = path.rstrip("/")
        assert current not in entries, f"{current}/ has two entries"
        entries[current] = rest
    names: dict[str, set[str]] = {}
    for directory, rest in entries.items():
        listed = [n.strip() for n in _strip_parens(rest).split(",")]
        bad = [n for n in listed if n and not re.fullmatch(r"[a-z_][a-z0-9_]*", n)]
        assert not bad, f"{directory}/: not a module name (put descriptions in parentheses): {bad}"
        names[directory] = {n for n in listed if n}
    return names


def in_tree() -> dict[str, set[str]]:
    """{package directory: its modules}, for every directory of ours that has one."""
    found: dict[str, set[str]] = {}
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            if path.stem.startswith("__"):
                continue
            directory = path.parent.relative_to(ROOT).as_posix()
            found.setdefault(directory, set()).add(path.stem)
    return found


def test_the_layout_is_parsed_into_many_entries() -> None:
    # Guards the tests below against passing on an empty parse.
    names = documented()
    assert len(names) >= 15
    assert sum(len(v) for v in names.values()) >= 100


def test_every_package_directory_has_an_entry_and_every_entry_a_directory() -> None:
    listed = documented()
    assert sorted(set(in_tree()) - set(listed)) == []
    assert [d for d in listed if not (ROOT / d).is_dir()] == []


def test_each_entry_lists_exactly_its_modules() -> None:
    listed, tree = documented(), in_tree()
    for directory in sorted(set(listed) & set(tree)):
        missing = sorted(tree[directory] - listed[directory])
        stale = sorted(listed[directory] - tree[directory])
        assert (missing, stale) == ([], []), f"{directory}/: not in README {missing}, gone {stale}"


def test_the_import_order_the_readme_states_is_the_one_checked() -> None:
    from tests.unit.test_layout import ORDER

    text = " ".join((ROOT / "README.md").read_text().split("### Layout", 1)[1].split())
    stated = text.split("in this order: ", 1)[1].split(" (checked by", 1)[0]
    assert [name.strip() for name in stated.split(",")] == ORDER
