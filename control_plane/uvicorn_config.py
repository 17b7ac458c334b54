"""How ``pixelflow api`` serves HTTP: uvicorn's h11 protocol with read deadlines, a connection
cap, and logging left to ``infra.logs``.

uvicorn has no header-read timeout: ``timeout_keep_alive`` only runs *between* requests, so a
client that trickles a header line every few seconds (slowloris) holds its connection, and a
slot under ``limit_concurrency``, forever. ``GuardedH11Protocol`` puts a deadline on each phase
of a request as the client sends it:

- headers: from the connection (or the first byte after a keep-alive pause) until the request
  line and headers are complete, ``PIXELFLOW_API_HEADER_TIMEOUT_SECONDS``; a late sender gets
  ``408`` and is disconnected;
- body: from the end of the headers until the last body byte, ``PIXELFLOW_API_BODY_TIMEOUT_SECONDS``;
  a late sender is disconnected (the app sees ``http.disconnect``).

Once the request is in, the app's own time is bounded elsewhere (database and Redis timeouts);
idle keep-alive connections close after ``PIXELFLOW_API_KEEPALIVE_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from infra.logs import logging_config
from infra.settings import Settings

__all__ = ["GuardedH11Protocol", "ServerConfig", "server_config"]

log = logging.getLogger("pixelflow.api.server")

_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 25\r\n\r\nthe request took too long"
)


class ServerConfig(uvicorn.Config):
    """uvicorn's Config plus the read deadlines; it is pickled into ``--workers`` processes whole."""

    def __init__(self, app: Any, *, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        super().__init__(app, http=GuardedH11Protocol, **kwargs)


class GuardedH11Protocol(H11Protocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout = float(getattr(config, "header_timeout", 10.0))
        self._body_timeout = float(getattr(config, "body_timeout", 60.0))
        self._phase = "idle"  # idle -> headers -> body -> app -> idle (keep-alive)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        self._arm("headers", self._header_timeout)  # a connection that never sends counts too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._arm("headers", self._header_timeout)
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._disarm()  # waiting for the next request: the keep-alive timer owns this gap
            self._phase = "idle"
        self._track()  # a pipelined request may already be under way

    def _track(self) -> None:
        state = self.conn.their_state
        if self._phase == "headers" and state is h11.SEND_BODY:
            self._arm("body", self._body_timeout)
        elif self._phase in ("headers", "body") and state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()
            self._phase = "app"

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info(
            "slow client disconnected",
            extra={"phase": self._phase, "client": f"{self.client[0]}:{self.client[1]}" if self.client else None},
        )
        if self._phase == "headers" and self.conn.our_state is h11.IDLE:
            self.transport.write(_408)  # no response has begun: say why before hanging up
        self.transport.close()


def server_config(app: Any, settings: Settings, **kwargs: Any) -> ServerConfig:
    """The one uvicorn configuration ``pixelflow api`` runs with (``app`` may be an import string)."""
    return ServerConfig(
        app,
        header_timeout=settings.api_header_timeout_seconds,
        body_timeout=settings.api_body_timeout_seconds,
        timeout_keep_alive=max(1, round(settings.api_keepalive_timeout_seconds)),
        limit_concurrency=settings.api_max_connections,
        # uvicorn's own config would give its loggers text handlers; this one sends every line
        # through infra.logs (JSON, scrubbed), in every --workers process.
        log_config=logging_config(settings.log_level, settings.log_format),
        log_level=settings.log_level.lower(),
        server_header=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (FORWARDED_ALLOW_IPS) whatever
        # PIXELFLOW_TRUSTED_PROXIES says; the app reads forwarding headers itself (control_plane/auth/peers.py)
        proxy_headers=False,
        **kwargs,
    )
