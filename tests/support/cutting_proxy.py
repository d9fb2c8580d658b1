"""A loopback TCP proxy that cuts a transfer at a byte count, not at a moment.

Tests of an interrupted push need the push to be midway when it is interrupted. Waiting for
the server to hold some objects and then stopping it races the push, and a push large enough
to lose that race on every machine costs a minute. In front of the server, this proxy lets
`limit` bytes through towards it and then, in `drop` mode, resets every connection and refuses
new ones (the connection to the remote dropped), or in `stall` mode forwards nothing more (a
push that hangs until it is killed). `reopen()` serves again without a limit, on the same port.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from typing import Literal
from urllib.parse import urlsplit

from tests.support.s3_server import free_ports

Mode = Literal["drop", "stall"]
# struct linger {on, seconds}: two ints on POSIX, two unsigned shorts on Windows.
LINGER_ZERO = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)


class CuttingProxy:
    def __init__(self, upstream: str, limit: int, mode: Mode = "drop") -> None:
        url = urlsplit(upstream)
        assert url.hostname and url.port, upstream
        self.upstream = (url.hostname, url.port)
        self.limit: int | None = limit
        self.mode = mode
        self.port = free_ports(1)[0]
        self.sent = 0
        self.cut = threading.Event()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.serving = threading.current_thread()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CuttingProxy:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        # A thread blocked in accept() keeps the port bound after close(): poll instead.
        self.listener.settimeout(0.05)
        self.serving = threading.Thread(target=self._serve, args=(self.listener,), daemon=True)
        self.serving.start()
        return self

    def reopen(self) -> CuttingProxy:
        """Serve again, with no limit (after a drop, or a stall whose client was killed)."""
        self.close()
        self.limit, self.cut = None, threading.Event()
        return self.start()

    def close(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = self.sockets, []
        if listener is not None:
            listener.close()
            if self.serving is not threading.current_thread():
                self.serving.join()  # until its accept() lets go of the port
        for sock in sockets:
            # Linger 0: close with a reset, as a dropped connection looks to the client.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
            sock.close()

    def _serve(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            client.settimeout(None)
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            for source, target, counted in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, target, counted), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, counted: bool) -> None:
        cut = self.cut
        try:
            while chunk := source.recv(65536):
                if counted and self._over(len(chunk)):
                    cut.set()
                    if self.mode == "drop":
                        self.close()
                    return  # stall: hold the rest; the client waits
                if cut.is_set() and self.mode == "stall":
                    return
                target.sendall(chunk)
            target.shutdown(socket.SHUT_WR)
        except OSError:  # the other side went away, or the connection was cut
            pass

    def _over(self, size: int) -> bool:
        with self.lock:
            self.sent += size
            return self.limit is not None and self.sent > self.limit
