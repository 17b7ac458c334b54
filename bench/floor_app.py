"""The floor for the API benchmark: a bare Litestar endpoint doing what job creation must do at
minimum (one INSERT and one arq enqueue), with the same pool and queue settings as PixelFlow."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, post
from litestar.datastructures import State

from infra.db import open_pool
from infra.queue import open_queue


@post("/floor", status_code=201)
async def create(state: State, data: dict[str, Any]) -> dict[str, str]:
    job_id = uuid.uuid4()
    async with state.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO bench_floor (id, spec) VALUES (%s, %s::jsonb)", (job_id, __import__("json").dumps(data))
        )
    await state.queue.enqueue_job("noop", str(job_id), _job_id=str(job_id), _queue_name="bench:floor")
    return {"id": str(job_id)}


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    app.state.pool = await open_pool(os.environ["PIXELFLOW_DATABASE_URL"], max_size=20)
    app.state.queue = await open_queue(os.environ["PIXELFLOW_REDIS_URL"], "bench:floor")
    async with app.state.pool.connection() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id uuid PRIMARY KEY, spec jsonb NOT NULL)")
    yield
    await app.state.queue.aclose()
    await app.state.pool.close()


app = Litestar([create], lifespan=[lifespan])
