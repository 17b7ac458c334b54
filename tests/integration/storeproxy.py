"""A TCP proxy in front of the suite's S3 that a test can cut: while it is down, every connection
is closed as soon as it opens, and open ones are cut, so the store fails fast (a reset) for the
API or worker behind it while everything else in the suite keeps using S3 directly."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["StoreProxy"]


class StoreProxy:
    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        socketserver.ThreadingTCPServer.daemon_threads = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if not self.up:
            return  # closed at once: the caller sees a reset connection
        upstream = socket.create_connection(self.target, timeout=10)
        with self._lock:
            self._open.update((client, upstream))
        pump = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        pump.start()
        _copy(client, upstream)
        pump.join(timeout=10)
        with self._lock:
            self._open.difference_update((client, upstream))
        upstream.close()

    def down(self) -> None:
        self.up = False
        with self._lock:
            for s in self._open:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.down()
        try:
            yield
        finally:
            self.up = True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
