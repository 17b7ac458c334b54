"""Where the API's Prometheus metrics are served: never openly on the API port.

- ``PIXELFLOW_API_METRICS_PORT``: a separate listener (on ``PIXELFLOW_API_METRICS_HOST``,
  loopback by default) that a network policy can keep apart from public traffic;
- ``PIXELFLOW_METRICS_TOKEN``: ``/metrics`` on the API port, for ``Authorization: Bearer <token>``
  only (compared in constant time).

With neither, the API port has no ``/metrics`` route at all (404).

``pixelflow api --workers N`` runs N processes, each counting its own requests. They share one
set of metrics through prometheus_client's multiprocess mode: every process writes its samples to
files in one directory (``PROMETHEUS_MULTIPROC_DIR``, cleared when the API starts), and whoever
serves ``/metrics`` (any process, for the token route; the supervising process, for the separate
listener, which N processes could not all bind) sums them, so each scrape is the whole API.
"""

from __future__ import annotations

import hmac
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from control_plane.api.openapi import METRICS_TOKEN, doc
from control_plane.problems import Unauthorized
from infra.settings import Settings

__all__ = [
    "MULTIPROC_DIR",
    "MissingMetricsToken",
    "metrics_controller",
    "metrics_listener",
    "multiprocess_listener",
    "prepare_multiprocess_dir",
    "remove_multiprocess_dir",
]

# prometheus_client's own variable: read when prometheus_client is imported, so it must be set
# before the --workers processes start (they are spawned, and import it afresh).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


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


@contextmanager
def _listening(settings: Settings, registry: CollectorRegistry | None = None) -> Iterator[None]:
    """prometheus_client's listener on the metrics port while the block runs (none without a port)."""
    if not settings.api_metrics_port:
        yield
        return
    server, thread = start_http_server(
        settings.api_metrics_port, addr=settings.api_metrics_host, registry=REGISTRY if registry is None else registry
    )
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@asynccontextmanager
async def metrics_listener(settings: Settings) -> AsyncIterator[None]:
    """The separate ``/metrics`` listener, for the app's lifetime (closed with it)."""
    with _listening(settings):
        yield


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """The directory the ``--workers`` processes share their samples through: the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` (emptied: files left by a previous run would be counted again)
    or a new one. Returns it and whether it is ours to delete on exit. Sets the variable for the
    processes about to be spawned."""
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        directory, owned = given, False
    else:
        directory, owned = tempfile.mkdtemp(prefix="pixelflow-metrics-"), True
    os.environ[MULTIPROC_DIR] = directory
    return directory, owned


@contextmanager
def multiprocess_listener(settings: Settings, directory: str) -> Iterator[None]:
    """The separate listener, served by the supervising process from every worker's samples."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    with _listening(settings, registry):
        yield


def remove_multiprocess_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
