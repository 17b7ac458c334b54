"""The worker's dependencies, opened once per process and closed in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from arq.connections import ArqRedis
from psycopg_pool import AsyncConnectionPool

from data_plane.engine_pool import EnginePool, sandbox_config
from data_plane.sources import source_client
from infra.db import open_pool
from infra.netguard import guarded_transport
from infra.queue import open_queue
from infra.repo import ClientRepo, DeliveryRepo, JobRepo, UsageRepo
from infra.settings import Settings
from infra.storage import ObjectStore, open_store

__all__ = ["WorkerDeps", "open_deps"]


@dataclass(frozen=True)
class WorkerDeps:
    settings: Settings
    pool: AsyncConnectionPool
    queue: ArqRedis
    store: ObjectStore
    jobs: JobRepo
    deliveries: DeliveryRepo
    clients: ClientRepo
    http: httpx.AsyncClient  # webhooks
    engines: EnginePool
    sources: httpx.AsyncClient  # URL sources: its own client, since the two allow-private switches differ
    usage: UsageRepo


@asynccontextmanager
async def open_deps(settings: Settings) -> AsyncIterator[WorkerDeps]:
    async with AsyncExitStack() as stack:
        pool = await open_pool(settings.database_url, max_size=settings.worker_concurrency + 8)
        stack.push_async_callback(pool.close)
        queue = await open_queue(settings.redis_url, settings.queue_name)
        stack.push_async_callback(queue.aclose)
        store = open_store(settings)
        stack.push_async_callback(store.close)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            follow_redirects=False,  # a redirect could point anywhere, past the SSRF guard
            headers={"User-Agent": "PixelFlow-Webhooks/1", "Content-Type": "application/json"},
            # Resolves once, checks every address, connects to the checked one (no DNS rebinding).
            transport=guarded_transport(
                allow_private=settings.webhook_allow_private,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            ),
            trust_env=False,  # an environment proxy would resolve the name itself, past the guard
        )
        stack.push_async_callback(http.aclose)
        sources = source_client(settings)
        stack.push_async_callback(sources.aclose)
        # one engine per slot: normal and interactive slots never wait for each other's engines
        engines = EnginePool(sandbox_config(settings), settings.worker_concurrency + settings.interactive_slots)
        stack.push_async_callback(engines.close)
        await engines.start()
        await store.ensure_bucket()
        yield WorkerDeps(
            settings,
            pool,
            queue,
            store,
            JobRepo(pool),
            DeliveryRepo(pool),
            ClientRepo(pool),
            http,
            engines,
            sources,
            UsageRepo(pool),
        )
