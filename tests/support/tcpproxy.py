"""A TCP proxy on loopback that a test can cut and heal: the network between a worker and Redis.

``cut()`` resets every open connection and refuses new ones (the peer sees ECONNRESET /
ECONNREFUSED, like a restarted host or a firewall reject); ``blackhole()`` keeps connections
open but silently drops every byte both ways; ``stall()`` stops forwarding but keeps the bytes
(a dead route that comes back: TCP delivers late what it could not deliver, and only timeouts
notice meanwhile). ``strand()`` stalls the connections open now, for good, and lets new ones
through: half-open connections, as after a NAT or load balancer forgot them or a failover moved
the address. ``heal()`` lets traffic through again. Threads only, stdlib only.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from types import TracebackType


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._mode = "open"  # open | cut | blackhole | stall
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stranded: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcpproxy", daemon=True)
        self.cuts = 0

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    # -- control -----------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every connection (RST, not FIN) and refuse new ones until :meth:`heal`."""
        with self._lock:
            self._mode = "cut"
            self.cuts += 1
            conns, self._conns = self._conns, set()
        for s in conns:
            _reset(s)

    def blackhole(self) -> None:
        """Keep connections but drop all bytes until :meth:`heal` (new ones hang too)."""
        with self._lock:
            self._mode = "blackhole"
            self.cuts += 1

    def stall(self) -> None:
        """Forward nothing, drop nothing, until :meth:`heal` (new connections stall too)."""
        with self._lock:
            self._mode = "stall"
            self.cuts += 1

    def strand(self) -> int:
        """Stall every connection open now until :meth:`stop`; new connections work. Returns
        how many connections were stranded."""
        with self._lock:
            self._stranded |= self._conns
            self.cuts += 1
            return len(self._stranded) // 2

    def heal(self) -> None:
        with self._lock:
            self._mode = "open"

    def stop(self) -> None:
        self._stopping.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
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
            if self._mode == "cut":
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

    def _held(self, client: socket.socket) -> bool:
        """Whether the pipe of ``client`` must forward nothing now (stalled or stranded)."""
        return self._mode == "stall" or client in self._stranded

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._stopping.is_set():
                if self._held(a):  # leave the bytes in the kernel's buffers
                    self._stopping.wait(0.05)
                    continue
                try:
                    ready, _, _ = select.select([a, b], [], [], 0.2)
                except (OSError, ValueError):
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    while self._held(a) and not self._stopping.is_set():
                        self._stopping.wait(0.05)  # read just as the stall began: hold it
                    if self._mode == "open":
                        peer[s].sendall(data)
                    # blackhole: the bytes are read and dropped
        except OSError:
            return
        finally:
            for s in (a, b):
                with self._lock:
                    self._conns.discard(s)
                _reset(s)


def _reset(s: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends RST: the peer cannot mistake it for a clean close."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.close()
