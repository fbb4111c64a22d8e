"""Every id and name pattern is anchored at both ends: ``$`` also matches before a final
newline, so ``^[a-z]+$`` lets ``"a\\n"`` through (a job id ``a\\n`` became a second job, a file
``a\\n.wav`` and a 500 on the ``Location`` header). Patterns end in ``\\Z`` or are used with
``fullmatch``; this test reads the code (ast) and names any pattern that ends in ``$``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from config.settings import Settings
from worker.jobs.request import InvalidRequest, is_job_id, parse_request
from worker.maintenance import schedules
from worker.maintenance.recurring import _NAME

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("worker", "tasks", "config")
RE_CALLS = {"compile", "match", "search", "fullmatch"}


def _pattern_text(node: ast.expr) -> str | None:
    """The pattern of a literal (an f-string's formatted parts read as ``X``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "X"
            for v in node.values
        )
    return None


def _ends_with_dollar(pattern: str) -> bool:
    if not pattern.endswith("$"):
        return False
    backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    return backslashes % 2 == 0  # "\\$" is a literal dollar sign


def loose_patterns(source: str, name: str) -> list[str]:
    """``file:line pattern`` for each ``re.*`` call whose literal pattern ends in ``$``."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        if not (
            isinstance(func, ast.Attribute)
            and func.attr in RE_CALLS
            and isinstance(func.value, ast.Name)
            and func.value.id == "re"
        ):
            continue
        pattern = _pattern_text(node.args[0])
        if pattern is not None and _ends_with_dollar(pattern):
            found.append(f"{name}:{node.lineno} {pattern!r}")
    return found


def test_the_scan_finds_a_pattern_anchored_with_dollar() -> None:
    code = 'import re\nA = re.compile(r"^[a-z]+$")\nB = re.match(rf"^{x}/y$", s)\n'
    fine = 'import re\nC = re.compile(r"^[a-z]+\\Z")\nD = re.compile(r"cost \\$")\n'
    assert len(loose_patterns(code, "x.py")) == 2
    assert loose_patterns(fine, "y.py") == []


def test_no_pattern_in_the_code_ends_with_dollar() -> None:
    found = [
        hit
        for top in SCANNED
        for path in sorted((ROOT / top).rglob("*.py"))
        for hit in loose_patterns(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == [], "use \\Z or fullmatch: $ also matches before a final newline"


@pytest.mark.parametrize("value", ["a\n", "job-1\n", "a\r\n"])
def test_a_trailing_newline_is_no_job_id_nor_name(value: str) -> None:
    assert not is_job_id(value)
    assert _NAME.match(value) is None
    with pytest.raises(schedules.InvalidSchedule) as got:
        schedules.get(schedules.beat_app(Settings.from_env({})), value)
    assert got.value.field == "name"


def test_a_task_name_with_a_trailing_newline_is_refused() -> None:
    request = {"input_text": "Hi.", "voice_id": "piTKgcLEGmPE4e6mEKli", "notify_task": "a.b\n"}
    with pytest.raises(InvalidRequest) as got:
        parse_request("create", request, Settings.from_env({}))
    assert got.value.field == "notify_task"
