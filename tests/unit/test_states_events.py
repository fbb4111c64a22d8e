"""``JobState`` and ``EventKind`` are the one list of a job's states and timeline events: every
copy elsewhere (the Lua scripts, the code that records events, the OpenAPI document, the README,
the dashboard, `akool-audio batch`) is derived from them or checked here against them."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from markupsafe import escape

from worker.cli import batch
from worker.jobs import EventKind, JobState
from worker.jobs.events import event_kind
from worker.web import openapi, page_fleet, page_format

ROOT = Path(__file__).resolve().parents[2]
LUA = sorted((ROOT / "worker" / "lua").glob("*.lua"))
PYTHON = sorted([*(ROOT / "worker").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")])
STATES = {s.value for s in JobState}
KINDS = {k.value for k in EventKind}


# -- the events the code writes ----------------------------------------------------------------

LUA_EVENT = re.compile(r"\bevent\(\s*([^,()]+),\s*([^,()]+)")


def lua_events() -> list[tuple[str, str]]:
    """(script, kind) of every ``event(now, kind, ...)`` call in the job scripts; a kind that is
    not a literal fails (only ``_job.lua``'s own definition passes one through)."""
    found = []
    for path in LUA:
        for m in LUA_EVENT.finditer(path.read_text()):
            kind = m.group(2).strip()
            if path.name == "_job.lua" and kind == "kind":  # local function event(now, kind...
                continue
            assert re.fullmatch(r"'[a-z_]+'", kind), f"{path.name}: event kind {kind!r}"
            found.append((path.name, kind.strip("'")))
    return found


# Python code records an event with one of these: the argument at this position is the kind.
RECORDERS = {"event_json": 0, "note": 1, "append": 2}
# ... or passes (kind, fields) to one of these.
TAKERS = {"set_fields", "count_transient_error"}


def _kind(node: ast.expr) -> str | None:
    """The kind a literal names: ``"poll"`` or ``EventKind.POLL``; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    if named and node.value.id in ("EventKind", "E"):  # type: ignore[attr-defined]
        attr = node.attr  # type: ignore[attr-defined]
        assert hasattr(EventKind, attr), f"EventKind.{attr} does not exist"
        return str(getattr(EventKind, attr).value)
    return None


def _pair_kind(node: ast.expr) -> str | None:
    if isinstance(node, ast.Tuple) and len(node.elts) == 2:
        return _kind(node.elts[0])
    return None


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            yield node


def python_events() -> list[tuple[str, str]]:
    """(where, kind) of every place Python records an event. A recorder's kind must be a
    literal, or a parameter of the function that calls it (the store passing one on)."""
    found: list[tuple[str, str]] = []
    for path in PYTHON:
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(ROOT)
        for fn in _functions(tree):
            params = {a.arg for a in (*fn.args.args, *fn.args.kwonlyargs)}
            # a helper that builds an event for a taker: deliver._event
            returns_event = fn.name.endswith("event") and ast.unparse(
                fn.returns or ast.Constant(None)
            ) in ("tuple[str, dict[str, Any]]", "tuple[EventKind, dict[str, Any]]")
            for node in ast.walk(fn):
                where = f"{rel}:{getattr(node, 'lineno', '?')}"
                if returns_event and isinstance(node, ast.Return) and node.value is not None:
                    kind = _pair_kind(node.value)
                    assert kind, f"{where}: an event tuple without a literal kind"
                    found.append((where, kind))
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.attr if isinstance(node.func, ast.Attribute) else None
                if isinstance(node.func, ast.Name) and node.func.id == "event_json":
                    name = "event_json"
                if name in RECORDERS and (name == "event_json" or name in ("note", "append")):
                    at = RECORDERS[name]
                    if len(node.args) <= at:
                        continue
                    arg = node.args[at]
                    if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):
                        assert arg.value.id in params, f"{where}: *{arg.value.id} is not passed in"
                        continue
                    if isinstance(arg, ast.Name) and arg.id in params:
                        continue  # passed on from the caller, who is scanned too
                    kind = _kind(arg)
                    assert kind, f"{where}: {name}() with a kind that is not a literal"
                    found.append((where, kind))
                if name in TAKERS:
                    for arg in (*node.args, *(k.value for k in node.keywords if k.arg == "event")):
                        kind = _pair_kind(arg)
                        if kind:
                            found.append((where, kind))
    return found


def test_every_event_a_lua_script_writes_is_an_event_kind() -> None:
    found = lua_events()
    assert len(found) >= 15, found  # the scan sees the scripts' events
    unknown = {(script, kind) for script, kind in found if kind not in KINDS}
    assert not unknown, f"add these to EventKind (worker/jobs/events.py): {sorted(unknown)}"


def test_every_event_python_records_is_an_event_kind() -> None:
    found = python_events()
    assert len(found) >= 12, found  # the scan sees the steps' events (clone stage included)
    assert {k for _, k in found} >= {"downloaded", "notified", "swept", "clone_started"}
    unknown = {(where, kind) for where, kind in found if kind not in KINDS}
    assert not unknown, f"add these to EventKind (worker/jobs/events.py): {sorted(unknown)}"


def test_every_event_kind_is_written_somewhere() -> None:
    written = {k for _, k in lua_events()} | {k for _, k in python_events()}
    assert written == KINDS, f"never written: {sorted(KINDS - written)}"


def test_every_event_kind_has_a_one_line_description() -> None:
    for kind in EventKind:
        assert kind.description.strip() and "\n" not in kind.description, kind
        assert kind.description.endswith("."), kind
    assert len({k.description for k in EventKind}) == len(EventKind)


# -- the states in the Lua scripts -------------------------------------------------------------


def _lua(name: str) -> str:
    return (ROOT / "worker" / "lua" / name).read_text()


def test_the_scripts_final_states_are_job_states_final_states() -> None:
    final = re.search(r"local FINAL = \{([^}]*)\}", _lua("_job.lua"))
    assert final, "_job.lua has no FINAL table"
    names = set(re.findall(r"(\w+)\s*=\s*true", final.group(1)))
    assert names == {s.value for s in JobState if s.is_final}


def test_every_state_a_script_names_is_a_job_state() -> None:
    targets: set[str] = set()
    compared: list[tuple[str, str]] = []
    for path in LUA:
        text = path.read_text()
        targets |= set(re.findall(r"set_state\([^,()]+,[^,()]+,\s*'(\w+)'\)", text))
        for state in re.findall(r"(?:\bst|\bold|'state'\))\s*[~=]=\s*'(\w+)'", text):
            compared.append((path.name, state))
    assert len(compared) >= 10, compared  # the scan sees the scripts' comparisons
    assert {s for _, s in compared} - STATES == set(), compared
    # every state is reached by some script, and no script moves a job to anything else
    assert targets == STATES


def test_only_a_failed_or_cancelled_job_can_be_retried() -> None:
    code = [x for x in _lua("job_retry.lua").splitlines() if not x.startswith("--")]
    line = next(x for x in code if "'wrong'" in x)
    assert set(re.findall(r"st ~= '(\w+)'", line)) == {
        s.value for s in JobState if s.is_unsuccessful
    }


# -- the OpenAPI document ----------------------------------------------------------------------


def _properties(doc: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(doc, dict):
        yield from (doc.get("properties") or {}).items()
        for value in doc.values():
            yield from _properties(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _properties(value)


def test_the_openapi_states_and_event_kinds_are_the_enums() -> None:
    doc = openapi.document()
    states = [schema for name, schema in _properties(doc) if name == "state"]
    assert len(states) >= 3  # Accepted, Summary, JobRow
    for schema in states:
        assert schema.get("enum") == [s.value for s in JobState], schema
    event = doc["components"]["schemas"]["Event"]["properties"]["type"]
    assert event["enum"] == [k.value for k in EventKind]
    state_param = [
        p
        for op in doc["paths"]["/v1/jobs"].values()
        for p in op.get("parameters", [])
        if p["name"] == "state"
    ]
    assert state_param and state_param[0]["schema"]["enum"] == [s.value for s in JobState]


# -- the README --------------------------------------------------------------------------------


def _section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(heading + "\n")
    end = text.find("\n#", start + len(heading))
    return text[start:end]


def test_the_readme_state_line_names_every_state_and_nothing_else() -> None:
    section = _section("## Job states and error semantics")
    flow = section.split("\n\n")[1]  # the paragraph under the heading
    assert set(re.findall(r"`(\w+)`", flow)) == STATES, flow


def test_the_readme_timeline_table_is_the_event_kinds_with_their_descriptions() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", _section("### The timeline"), re.M)
    assert len(rows) == len(EventKind), rows
    expected = [(k.value, k.description) for k in EventKind]
    assert [(kind, text.strip()) for kind, text in rows] == expected, "\n".join(
        f"| `{k}` | {d} |" for k, d in expected
    )


# -- the dashboard and the CLI -----------------------------------------------------------------

# One event of each kind, with the fields its writer gives it.
SAMPLES: dict[str, dict[str, Any]] = {
    "accepted": {"kind": "create"},
    "submit_started": {"n": 1},
    "submitted": {"akool_id": "a1", "status": 1},
    "submit_failed": {"code": "ReadTimeout", "ambiguous": True},
    "poll": {"planned": 100.0, "status": 2, "error": False, "next": 102.0},
    "webhook": {"status": 3},
    "status": {"from": 2, "to": 3},
    "downloaded": {"started": 100.5, "bytes": 2048, "sha256": "ab" * 32},
    "download_failed": {"started": 100.5, "code": "download_transient", "error": "reset"},
    "storing_refused": {"attempt": 1, "error": "bucket missing"},
    "stored": {"location": "/audio/a.wav", "bytes": 2048},
    "succeeded": {},
    "failed": {"code": "akool_failed", "message": "status 4"},
    "error": {"code": "download_error", "message": "HTTP 500"},
    "notified": {"channel": "url", "attempt": 1, "outcome": "delivered"},
    "cancel_requested": {"state": "submitted"},
    "cancelled": {},
    "retried": {"attempt": 2},
    "swept": {"action": "poll"},
    "clone_started": {"ambiguous": False},
    "clone_ambiguous": {"since": 90.0},
    "clone_adopted": {"voice_doc_id": "d1"},
    "cloned": {"voice_doc_id": "d1", "status": 1},
    "voice_polled": {"voice_doc_id": "d1", "status": 2},
    "clone_failed": {"doing": "cloning the voice", "code": "ReadTimeout"},
    "voice_ready": {"voice_id": "v-clone", "voice_doc_id": "d1", "how": "cloned"},
}


def test_the_timeline_describes_every_event_kind() -> None:
    assert set(SAMPLES) == KINDS
    events = [{"t": 100.0 + i, "type": k, **SAMPLES[k]} for i, k in enumerate(SAMPLES)]
    steps = page_format.timeline(events)
    for event, step in zip(events, steps, strict=True):
        kind = event_kind(event["type"])
        assert kind is not None
        assert step.about == kind.description
        assert step.title and step.title != kind.value, (kind, step)  # a title of its own
        assert "{" not in step.detail, (kind, step)  # its fields read, not dumped as JSON
    unknown = page_format.timeline([{"t": 1.0, "type": "from_a_later_version", "x": 1}])[0]
    assert (unknown.title, unknown.about) == ("from_a_later_version", "")


def test_the_tones_and_styles_cover_every_state() -> None:
    css = (ROOT / "worker" / "web" / "static" / "dashboard.css").read_text()
    assert set(page_format.TONES) == STATES
    for tone, _sign in page_format.TONES.values():
        assert f".tone-{tone} " in css, tone
    assert tuple(s.value for s in JobState if s.is_final) == page_fleet.SERIES
    for state in page_fleet.SERIES:
        assert f".bar.s-{state}" in css, state
    assert set(batch.STYLES) == STATES | {"queued"}
    assert tuple(s.value for s in JobState) == batch.STATES


def test_every_event_kinds_description_is_on_a_real_job_page(
    redis_url: str, tmp_path: Path
) -> None:
    import redis

    from config.settings import Settings
    from tests.unit.test_web_session import TOKEN, app_for, log_in
    from worker.jobs import JobStore

    # Given a job whose timeline holds one event of every kind, written through the store
    store = JobStore(
        redis.Redis.from_url(redis_url, decode_responses=True), Settings(redis_url=redis_url)
    )
    store.create("every-kind", "create", {"input_text": "Hi.", "voice_id": "v1"}, "task-1")
    for kind in SAMPLES:
        if kind != "accepted":  # the store wrote it
            store.timeline.note("every-kind", kind, **SAMPLES[kind])
    assert [e["type"] for e in store.timeline.events("every-kind")] == list(SAMPLES)

    # When its page is shown
    client = app_for(redis_url, tmp_path, TOKEN).test_client()
    log_in(client)
    page = client.get("/jobs/every-kind")

    # Then every kind's description is on it
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    timeline = body[body.index('id="timeline"') :]
    missing = [k.value for k in EventKind if str(escape(k.description)) not in timeline]
    assert not missing, f"no description on the job page for {missing}"
    assert timeline.count("<li ") == len(EventKind)
