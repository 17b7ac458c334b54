"""The API reference page at ``/schema``: ReDoc, served by the API itself from ``redoc/``
(ReDoc's standalone bundle, MIT, see LICENSE there), so the page works offline and loads nothing
from a CDN. ReDoc because it is one file and renders OpenAPI 3.1 ``webhooks``."""

from __future__ import annotations

from pathlib import Path

from litestar.openapi.plugins import OpenAPIRenderPlugin, RedocRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

__all__ = ["ASSETS_PATH", "REDOC_VERSION", "docs_assets", "docs_plugins"]

REDOC_VERSION = "2.5.2"
ASSETS_PATH = "/schema/assets"
_ASSETS = Path(__file__).parent / "redoc"
# Litestar's default favicon and fonts come from CDNs; an empty data: icon also spares the /favicon.ico request.
_NO_FAVICON = "<link rel='icon' href='data:,'>"


def docs_plugins() -> list[OpenAPIRenderPlugin]:
    return [
        RedocRenderPlugin(
            js_url=f"{ASSETS_PATH}/redoc.standalone.js", google_fonts=False, favicon=_NO_FAVICON, path="/redoc"
        )
    ]


def docs_assets() -> Router:
    return create_static_files_router(ASSETS_PATH, directories=[_ASSETS], include_in_schema=False)
