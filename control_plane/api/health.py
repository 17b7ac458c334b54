"""Liveness and readiness. Readiness checks each dependency with a short timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import msgspec
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec

from control_plane.deps import ApiDepsDep

__all__ = ["healthz", "readyz"]


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/healthz", tags=["health"], operation_id="healthz", summary="The process is up")
async def healthz() -> Health:
    """Liveness: answers 200 while the process serves requests; checks no dependency. No API key."""
    return Health("ok")


async def _check(name: str, coro: Awaitable[object]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(coro, timeout=2.0)
    except Exception as exc:
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


async def _db(deps: ApiDepsDep) -> None:
    async with deps.pool.connection(timeout=2.0) as conn:
        await conn.execute("SELECT 1")


@get(
    "/readyz",
    tags=["health"],
    operation_id="readyz",
    summary="PostgreSQL, Redis and object storage are reachable",
    responses={503: ResponseSpec(Health, description="A dependency is unreachable: `checks` says which")},
)
async def readyz(deps: ApiDepsDep) -> Response[Health]:
    """Readiness: checks PostgreSQL, Redis and object storage, each within 2 s; 200 when all
    answer, 503 otherwise, with each check's result. No API key."""
    results = dict(
        await asyncio.gather(
            _check("postgres", _db(deps)),
            _check("redis", deps.queue.ping()),
            _check("storage", deps.store.ping()),
        )
    )
    ok = all(v == "ok" for v in results.values())
    return Response(Health("ok" if ok else "unavailable", results), status_code=200 if ok else 503)
