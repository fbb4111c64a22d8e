"""The thin HTTP layer: route, count, apply faults, authenticate, call the state, render.

Akool endpoints answer HTTP 200 with ``{code, msg, data}`` for business errors; faults can answer
gateway HTML, a truncated body or nothing at all. ``/_sandbox/`` is the admin API (plain JSON,
HTTP 400 for bad input). Nothing is logged to stderr per request, and no header is ever logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from sandbox import codes, voices
from sandbox.audio import AudioSpec
from sandbox.errors import ErrorAnswer
from sandbox.faults import Decision, FaultRule
from sandbox.state import SandboxState

log = logging.getLogger("sandbox")

MAX_BODY = 16 * 1024 * 1024
_API = "/api/open/v3"
_V4 = "/api/open/v4/voice"
_ROUTES: dict[tuple[str, str], str] = {
    ("POST", f"{_API}/getToken"): "token",
    ("GET", f"{_API}/voice/list"): "voices",
    ("POST", f"{_API}/audio/create"): "create",
    ("POST", f"{_API}/audio/clone"): "clone",
    ("GET", f"{_API}/audio/infobymodelid"): "detail",
    ("POST", f"{_V4}/tts"): "v4_tts",
    ("POST", f"{_V4}/clone"): "v4_clone",
    ("GET", f"{_V4}/list"): "v4_voices",
}
#: Routes with the id in the path (VoiceLab), and the files; group 1 is the id.
_PATH_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(rf"^{_V4}/resource/detail/([^/]{{1,128}})$"), "v4_detail"),
    ("GET", re.compile(rf"^{_V4}/detail/([^/]{{1,128}})$"), "v4_voice_detail"),
)
_FILE = re.compile(r"^/(files|previews)/([A-Za-z0-9_-]{1,64})\.wav$")
_ADMIN_JOB = re.compile(r"^/_sandbox/jobs/([^/]+)$")
_ADMIN_CLONE = re.compile(r"^/_sandbox/clones/([^/]+)$")
_GATEWAY_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class App(Protocol):
    """What the handler needs from the server around it."""

    state: SandboxState
    url: str

    def reset(self) -> None: ...
    def pause(self, seconds: float) -> None: ...


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server that knows its app, stays quiet and can close open keep-alives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, SandboxHandler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox connection error", exc_info=True)


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "akool-sandbox/1"
    sys_version = ""
    timeout = 60
    # Buffer the response until the handler returns (http.server flushes then): the request is
    # in the stats before the client can read the answer, so tests never race the log.
    wbufsize = 64 * 1024
    server: SandboxHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""

    def setup(self) -> None:
        super().setup()
        # headers and body leave in separate writes: without this, delayed ACKs cost ~40 ms
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def app(self) -> App:
        return self.server.app

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        chunks: Iterable[bytes] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunks is None:
            self.wfile.write(body)
        else:
            for chunk in chunks:
                self.wfile.write(chunk)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _envelope(self, code: int, msg: str | None = None, data: Any = None) -> int:
        self._json(200, {"code": code, "msg": msg or codes.message(code), "data": data})
        return code

    def _not_found(self) -> int:
        path = urlsplit(self.path).path
        body = f"<!DOCTYPE html><pre>Cannot {self.command} {path}</pre>".encode()
        self._send(404, body, "text/html; charset=utf-8")
        return 404

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        try:
            try:
                body = self._read_body()
            except ValueError:
                self.close_connection = True
                self._json(413, {"code": 413, "msg": "request body too large"})
                return
            if parts.path.startswith("/_sandbox/"):
                self._admin(method, parts.path, body)
                return
            endpoint = _ROUTES.get((method, parts.path))
            match = _FILE.match(parts.path) if method in ("GET", "HEAD") else None
            if match is not None:
                endpoint = "download"
            for route_method, pattern, name in _PATH_ROUTES:
                if endpoint is None and method == route_method:
                    match = pattern.match(parts.path)
                    endpoint = name if match else None
            if endpoint is None:
                self._not_found()
                return
            self._akool(endpoint, parts.query, body, match)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("sandbox handler failed on %s %s", method, parts.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._json(500, {"code": 500, "msg": "sandbox internal error"})

    def _akool(self, endpoint: str, query: str, body: bytes, file_match: Any) -> None:
        state = self.app.state
        state.count_request(endpoint)
        decision = state.faults.decide(endpoint)
        state.record_faults(decision.fired)
        if decision.delay:
            self.app.pause(decision.delay)
        if decision.error is not None:
            state.record_request(endpoint, self._fault(decision.error))
            return
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        handler: Callable[[str, dict[str, str], bytes, Decision, Any], int] = getattr(
            self, f"_ep_{endpoint}"
        )
        try:
            if endpoint not in ("token", "download"):
                state.authenticate(self.headers.get("Authorization"), self.headers.get("x-api-key"))
            status = handler(endpoint, params, body, decision, file_match)
        except ErrorAnswer as err:
            status = self._envelope(err.code, err.msg)
        state.record_request(endpoint, status)

    def _fault(self, rule: FaultRule) -> int:
        if rule.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return 0
        if rule.kind == "code":
            return self._envelope(rule.code, rule.msg)
        if rule.kind == "malformed_json":
            self._send(
                200,
                b'{"code":1000,"msg":"OK","data":{"_id":"65f8017f',
                "application/json; charset=utf-8",
            )
            return 200
        reason = self.responses.get(rule.http_status, ("Error",))[0]
        html = _GATEWAY_HTML.format(status=rule.http_status, reason=reason)
        self._send(rule.http_status, html.encode(), "text/html")
        return rule.http_status

    @staticmethod
    def _json_body(body: bytes) -> Any:
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ErrorAnswer(codes.PARAM_ERROR, "request body must be valid JSON") from exc

    # -- Akool endpoints (each returns the code or HTTP status it answered) --------------------

    def _ep_token(self, _e: str, _p: dict[str, str], body: bytes, _d: Decision, _m: Any) -> int:
        token = self.app.state.issue_token(self._json_body(body))
        self._json(200, {"code": codes.OK, "token": token})
        return codes.OK

    def _ep_voices(self, _e: str, params: dict[str, str], _b: bytes, _d: Decision, _m: Any) -> int:
        source = params.get("from")
        if source is not None and source not in ("3", "4"):
            raise ErrorAnswer(codes.PARAM_ERROR, f"from must be 3 or 4, got {source!r}")
        data = voices.listing(self.app.url, None if source is None else int(source))
        return self._envelope(codes.OK, "ok", data)

    def _ep_create(
        self, endpoint: str, _p: dict[str, str], body: bytes, decision: Decision, _m: Any
    ) -> int:
        record = self.app.state.create_job(endpoint, self._json_body(body), decision.marks)
        return self._envelope(codes.OK, "OK", record)

    _ep_clone = _ep_create

    def _ep_detail(
        self, _e: str, params: dict[str, str], _b: bytes, decision: Decision, _m: Any
    ) -> int:
        record = self.app.state.detail(params.get("audio_model_id"), decision.marks)
        return self._envelope(codes.OK, "OK", record)

    def _ep_download(
        self, _e: str, _p: dict[str, str], _b: bytes, decision: Decision, match: Any
    ) -> int:
        kind, key = match.group(1), match.group(2)
        spec: AudioSpec | None = None
        if "url_404" not in decision.marks:
            state = self.app.state
            spec = state.file(key) if kind == "files" else state.preview(key)
        if spec is None:
            self._send(404, b"Not Found", "text/plain")
            return 404
        self._send(200, b"", "audio/wav", chunks=spec.chunks(), length=spec.size)
        return 200

    # -- VoiceLab (v4) endpoints ---------------------------------------------------------------

    def _ep_v4_tts(
        self, _e: str, _p: dict[str, str], body: bytes, decision: Decision, _m: Any
    ) -> int:
        record = self.app.state.create_tts(self._json_body(body), decision.marks)
        return self._envelope(codes.OK, "OK", record)

    def _ep_v4_detail(
        self, _e: str, _p: dict[str, str], _b: bytes, decision: Decision, match: Any
    ) -> int:
        data = self.app.state.resource_detail(match.group(1), decision.marks)
        return self._envelope(codes.OK, "OK", data)

    def _ep_v4_clone(
        self, _e: str, _p: dict[str, str], body: bytes, decision: Decision, _m: Any
    ) -> int:
        record = self.app.state.clone_voice(self._json_body(body), decision.marks)
        return self._envelope(codes.OK, "OK", record)

    def _ep_v4_voice_detail(
        self, _e: str, _p: dict[str, str], _b: bytes, decision: Decision, match: Any
    ) -> int:
        record = self.app.state.voice_detail(match.group(1), decision.marks)
        return self._envelope(codes.OK, "OK", record)

    def _ep_v4_voices(
        self, _e: str, params: dict[str, str], _b: bytes, _d: Decision, _m: Any
    ) -> int:
        return self._envelope(codes.OK, "OK", self.app.state.voice_list(params))

    # -- admin ---------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        app = self.app
        if path == "/_sandbox/config" and method == "GET":
            self._json(200, app.state.config.to_dict())
        elif path == "/_sandbox/config" and method == "POST":
            try:
                fields = json.loads(body or b"{}")
                cfg = app.state.configure(fields)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                self._json(400, {"error": str(exc)})
                return
            self._json(200, cfg.to_dict())
        elif path == "/_sandbox/reset" and method == "POST":
            app.reset()
            self._json(200, {"ok": True})
        elif path == "/_sandbox/stats" and method == "GET":
            self._json(200, app.state.stats())
        elif path == "/_sandbox/jobs" and method == "GET":
            self._json(200, app.state.jobs_view())
        elif (m := _ADMIN_JOB.match(path)) and method == "GET":
            try:
                self._json(200, app.state.job_view(m.group(1)))
            except KeyError:
                self._json(404, {"error": f"no job {m.group(1)!r}"})
        elif path == "/_sandbox/clones" and method == "GET":
            self._json(200, app.state.clones_view())
        elif (m := _ADMIN_CLONE.match(path)) and method == "GET":
            try:
                self._json(200, app.state.clone_view(m.group(1)))
            except KeyError:
                self._json(404, {"error": f"no clone {m.group(1)!r}"})
        else:
            self._json(404, {"error": f"no admin route {method} {path}"})
