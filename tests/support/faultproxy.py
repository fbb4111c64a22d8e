"""A TCP proxy on loopback that breaks HTTP transfers part-way: the network between a worker and
an object store. (``tcpproxy.TcpProxy`` cuts on command; an upload needs a cut that lands in
the middle of a request body, which only the proxy itself can time.)

``cap_connections(n)``: reset any connection once it has carried more than ``n`` bytes towards
the server; new connections are accepted, so small requests (a HEAD, an abort) still pass while
every large body is cut. ``cut_after(n)``: once ``n`` bytes in all have gone towards the server,
reset every connection and refuse new ones (the store vanished mid-upload).
``hold_answers_after(n)``: once ``n`` more bytes have gone towards the server, forward nothing
back (the server has the request, the client never hears its answer: a crash window).
``heal()`` lets everything through again. Resets are RSTs (SO_LINGER 0). Threads only, stdlib only.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._per_connection: int | None = None
        self._total_left: int | None = None
        self._refusing = False
        self._hold_after: int | None = None  # upstream byte count after which answers are held
        self.resets = 0  # connections reset by a fault
        self.upstream_bytes = 0  # bytes forwarded towards the server

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    # -- control -----------------------------------------------------------------------------

    def cap_connections(self, limit: int) -> None:
        with self._lock:
            self._per_connection = limit

    def cut_after(self, total: int) -> None:
        with self._lock:
            self._total_left = total

    def hold_answers_after(self, more: int) -> None:
        with self._lock:
            self._hold_after = self.upstream_bytes + more

    def _holding(self) -> bool:
        with self._lock:
            return self._hold_after is not None and self.upstream_bytes >= self._hold_after

    def heal(self) -> None:
        with self._lock:
            self._per_connection = self._total_left = self._hold_after = None
            self._refusing = False

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            _reset(s)
        self._thread.join(timeout=5)

    # -- plumbing ----------------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _allow(self, sent: int, more: int) -> bool:
        """Account ``more`` bytes towards the server on a connection that carried ``sent``;
        False when a fault must reset it instead (and, for ``cut_after``, all the others)."""
        with self._lock:
            if self._per_connection is not None and sent + more > self._per_connection:
                self.resets += 1
                return False
            if self._total_left is not None:
                self._total_left -= more
                if self._total_left < 0:
                    self._refusing = True
                    self.resets += 1
                    conns, self._conns = self._conns, set()
                    for s in conns:
                        _reset(s)
                    return False
            self.upstream_bytes += more
            return True

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        sent = 0
        faulted = True  # a fault (or an error) resets both sides; a plain close is passed on
        try:
            while not self._stopping.is_set():
                watched = [client] if self._holding() else [client, upstream]
                ready, _, _ = select.select(watched, [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        faulted = False  # one side closed: the other gets a clean close
                        return
                    if s is client:
                        if not self._allow(sent, len(data)):
                            return
                        sent += len(data)
                    peer[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.difference_update((client, upstream))
            for s in (client, upstream):
                if faulted:
                    _reset(s)
                else:
                    with contextlib.suppress(OSError):
                        s.close()


def _reset(s: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends RST: the peer cannot mistake it for a clean close."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.close()
