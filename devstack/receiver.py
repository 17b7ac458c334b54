"""A real HTTP webhook receiver on 127.0.0.1 that records deliveries and answers from a script.

``python -m devstack.receiver --port 9000 --save webhook.json`` is the README walk-through's
receiver: it answers the first delivery 200, saves its headers and body to the file and exits."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devstack.backing_services import free_port

__all__ = ["Received", "WebhookReceiver", "main"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class WebhookReceiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self._by_path: dict[str, list[Received]] = {}  # the same, by path: benchmarks poll thousands
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}  # path -> responses, then 200s
        self._lock = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer._lock:
                    got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    outer.received.append(got)
                    outer._by_path.setdefault(self.path, []).append(got)
                    queue = outer.script.get(self.path, [])
                    status, headers = queue.pop(0) if queue else (200, {})
                    outer._lock.notify_all()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond(self, path: str, *responses: int | tuple[int, dict[str, str]]) -> None:
        self.script[path] = [r if isinstance(r, tuple) else (r, {}) for r in responses]

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return list(self._by_path.get(path, ()))

    async def arrived(self, path: str, count: int = 1, timeout: float = 300.0) -> list[Received]:
        """``wait`` for an event loop: polls, so thousands of jobs can wait at once (waiting in
        ``asyncio.to_thread`` would cap them at the default executor's few threads)."""
        end = time.monotonic() + timeout
        while len(got := self.at(path)) < count:
            if time.monotonic() > end:
                raise TimeoutError(f"{path}: {len(got)} of {count} deliveries after {timeout} s")
            await asyncio.sleep(0.01)
        return got

    def wait(self, path: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len([r for r in self.received if r.path == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len([r for r in self.received if r.path == path])
                    raise TimeoutError(f"{path}: {got} of {count} deliveries after {timeout} s")
                self._lock.wait(left)
            return [r for r in self.received if r.path == path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.receiver", description="Save one webhook delivery.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--save", required=True, help="file for the first delivery: {headers, body}")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it")
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(args.port)
    receiver.server.daemon_threads = False  # so closing waits until the 200 has been sent
    with receiver, receiver._lock:
        if not receiver._lock.wait_for(lambda: receiver.received, timeout=args.timeout):
            print(f"no delivery within {args.timeout:g} s", flush=True)
            return 1
        got = receiver.received[0]
    with open(args.save, "w") as out:  # the body exactly as received: a signature covers its bytes
        json.dump({"headers": got.headers, "body": got.body.decode()}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
