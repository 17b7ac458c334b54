"""Where the API's Prometheus metrics are served: never openly on the API port.

- ``PIXELFLOW_API_METRICS_PORT``: a separate listener (on ``PIXELFLOW_API_METRICS_HOST``,
  loopback by default) that a network policy can keep apart from public traffic;
- ``PIXELFLOW_METRICS_TOKEN``: ``/metrics`` on the API port, for ``Authorization: Bearer <token>``
  only (compared in constant time).

With neither, the API port has no ``/metrics`` route at all (404).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import start_http_server

from control_plane.openapi import METRICS_TOKEN, doc
from control_plane.problems import Unauthorized
from infra.settings import Settings

__all__ = ["MissingMetricsToken", "metrics_controller", "metrics_listener"]


class MissingMetricsToken(Unauthorized):
    title = "Missing or invalid metrics token"


def metrics_controller(token: str) -> type[PrometheusController]:
    expected = f"Bearer {token}".encode()

    def require_token(connection: ASGIConnection, _: Any) -> None:
        given = connection.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise MissingMetricsToken("metrics need the metrics token", headers={"WWW-Authenticate": "Bearer"})

    class TokenMetricsController(PrometheusController):
        guards = [require_token]

        @get(
            tags=["health"],
            operation_id="metrics",
            summary="Prometheus metrics (with the metrics token)",
            media_type="text/plain",
            security=[{METRICS_TOKEN: []}],
            opt=doc(raises=[MissingMetricsToken], returns="text/plain"),
        )
        async def get(self) -> Response:
            """The API process's metrics in Prometheus' text format, for `Authorization: Bearer
            <PIXELFLOW_METRICS_TOKEN>` (not an API key); see docs/OPERATIONS.md for the series."""
            return await PrometheusController.get.fn(self)

    return TokenMetricsController


@asynccontextmanager
async def metrics_listener(settings: Settings) -> AsyncIterator[None]:
    """The separate ``/metrics`` listener, for the app's lifetime (closed with it)."""
    if not settings.api_metrics_port:
        yield
        return
    server, thread = start_http_server(settings.api_metrics_port, addr=settings.api_metrics_host)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
