"""The API's composition root: ``create_app(settings)`` wires every dependency; nothing happens
at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusConfig
from litestar.routes import HTTPRoute
from opentelemetry.sdk.trace import TracerProvider

from control_plane.api.assets import create_asset_upload
from control_plane.api.bodies import BoundedJsonRequest
from control_plane.api.docs import docs_assets
from control_plane.api.health import healthz, readyz
from control_plane.api.jobs import JobsController
from control_plane.api.limits import get_limits
from control_plane.api.metrics import metrics_controller, metrics_listener
from control_plane.api.openapi import JobSpecSchemaPlugin, describe, openapi_config
from control_plane.api.specs import validate_spec
from control_plane.api.storage import storage_get, storage_put
from control_plane.api.templates import TemplatesController
from control_plane.api.uploads import upload_route
from control_plane.api.usage import get_usage
from control_plane.auth.peers import trusted_proxies
from control_plane.auth.principal import provide_principal
from control_plane.dashboard.routes import dashboard_routes
from control_plane.dashboard.session_routes import auth_routes
from control_plane.delivery.routes import signed_image
from control_plane.deps import ApiDeps, open_deps
from control_plane.problems import problem_response
from infra.settings import Settings
from infra.telemetry import configure_tracing

__all__ = ["create_app"]


def create_app(
    settings: Settings, *, tracer_provider: TracerProvider | None = None, own_metrics_listener: bool = True
) -> Litestar:
    """``tracer_provider`` overrides the one ``PIXELFLOW_OTEL_EXPORTER`` would install (tests).
    ``own_metrics_listener=False``: one of ``--workers N`` processes, whose supervisor serves the
    separate metrics listener for all of them (control_plane/api/metrics.py)."""
    provider = tracer_provider or configure_tracing(settings.otel_exporter, "pixelflow-api")
    plugins: list = [JobSpecSchemaPlugin()]
    if provider is not None:
        plugins.append(
            OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, exclude=["/metrics", "/healthz"]))
        )
    prometheus = PrometheusConfig(app_name="pixelflow", prefix="pixelflow_http", group_path=True, exclude=["/metrics"])

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        listener = metrics_listener(settings) if own_metrics_listener else nullcontext()
        async with open_deps(settings) as deps, listener:
            app.state.deps = deps
            yield

    def provide_deps(state: State) -> ApiDeps:
        return state.deps

    inline_cap = min(settings.max_inline_upload_bytes, settings.max_source_bytes)
    handlers: list = [
        JobsController,
        TemplatesController,
        upload_route(inline_cap + 64 * 1024),
        validate_spec,
        get_limits,
        get_usage,
        create_asset_upload,
        signed_image,
        healthz,
        readyz,
        docs_assets(),
        *auth_routes,
        dashboard_routes,
    ]
    if settings.metrics_token:
        handlers.append(metrics_controller(settings.metrics_token))
    if settings.storage == "local":
        handlers += [storage_put, storage_get]

    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        dependencies={
            "deps": Provide(provide_deps, sync_to_thread=False),  # handlers: `deps: ApiDepsDep`
            "principal": Provide(provide_principal),
        },
        exception_handlers={Exception: problem_response},
        middleware=[trusted_proxies(settings), prometheus.middleware],  # first: the client address for all after
        plugins=plugins,
        request_max_body_size=settings.max_request_body_bytes,
        request_class=BoundedJsonRequest,
        openapi_config=openapi_config(),
        debug=False,
        logging_config=None,  # the process's logging is infra.logs' (JSON, scrubbed); Litestar must not replace it
    )
    _fix_options_allow(app)
    describe(app)
    return app


def _fix_options_allow(app: Litestar) -> None:
    """Litestar 2 builds a path's automatic OPTIONS handler with its first handler and keeps it
    when later ones join the path, so ``Allow`` lists only the first method (litestar#4169, fixed
    in 3.0). Point each at its path's final route."""
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "OPTIONS" in route.route_handler_map:
            fn = route.route_handler_map["OPTIONS"][0].fn
            if fn.__qualname__ == "HTTPRoute.create_options_handler.<locals>.options_handler":
                (cell,) = fn.__closure__ or ()
                cell.cell_contents = route
