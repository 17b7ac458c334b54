"""An image origin for URL-source tests: a real HTTP server on a loopback address, each path
answering as a test set it up (bytes, a redirect, an error status, a body that trickles or never
ends), counting what it managed to send before the client hung up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Origin"]


@dataclass
class _Route:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    chunk: bytes = b""  # with chunk: a chunked body of `chunk` repeated
    repeat: int | None = None  # None: forever, until the client hangs up
    interval: float = 0.0  # seconds between chunks
    fail_first: int = 0  # answer 503 to this many requests first


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up mid-body is what these tests provoke, not news


class Origin:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, _Route] = {}
        self.sent: dict[str, int] = {}  # body bytes written per path
        self.hits: dict[str, int] = {}
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                origin._serve(self)

        self.server = _QuietServer((host, 0), Handler)
        self.host = host
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Origin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def serve(self, path: str, body: bytes, status: int = 200, *, fail_first: int = 0, **headers: str) -> str:
        self.routes[path] = _Route(status, body, tuple(headers.items()), fail_first=fail_first)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = _Route(status, headers=(("Location", location),))
        return self.url(path)

    def stream(
        self, path: str, chunk: bytes, *, repeat: int | None = None, interval: float = 0.0, **headers: str
    ) -> str:
        """A chunked body (no Content-Length unless given as a header): ``chunk`` ``repeat`` times."""
        self.routes[path] = _Route(200, headers=tuple(headers.items()), chunk=chunk, repeat=repeat, interval=interval)
        return self.url(path)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        self.hits[path] = self.hits.get(path, 0) + 1
        route = self.routes.get(path, _Route(404, b"not found"))
        if self.hits[path] <= route.fail_first:
            route = _Route(503, b"busy")
        h.send_response(route.status)
        names = {name.lower() for name, _ in route.headers}
        for name, value in route.headers:
            h.send_header(name.replace("_", "-"), value)
        chunked = bool(route.chunk) and "content_length" not in names
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        elif "content_length" not in names:
            h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        write: Callable[[bytes], object] = (
            (lambda data: h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))) if chunked else h.wfile.write
        )
        try:
            if not route.chunk:
                write(route.body)
                self._count(path, len(route.body))
                return
            n = 0
            while route.repeat is None or n < route.repeat:
                write(route.chunk)
                h.wfile.flush()
                self._count(path, len(route.chunk))
                n += 1
                if route.interval:
                    time.sleep(route.interval)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up: what a limit is for
            h.close_connection = True

    def _count(self, path: str, n: int) -> None:
        self.sent[path] = self.sent.get(path, 0) + n
