"""The API's dependencies, opened once in the app's lifespan and closed in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from arq.connections import ArqRedis
from litestar.di import NamedDependency
from psycopg_pool import AsyncConnectionPool

from control_plane.auth.devices import KnownDevices
from control_plane.auth.ratelimit import RateLimiter
from control_plane.delivery.inflight import InFlight
from control_plane.delivery.served import Served
from infra.db import open_pool
from infra.queue import open_queue
from infra.repo import ClientRepo, DeliveryRepo, JobRepo, SigningKeyRepo, TemplateRepo, UsageRepo, UserRepo
from infra.settings import Settings
from infra.storage import ObjectStore, open_store

__all__ = ["ApiDeps", "ApiDepsDep", "open_deps"]


@dataclass(frozen=True)
class ApiDeps:
    settings: Settings
    pool: AsyncConnectionPool
    queue: ArqRedis
    store: ObjectStore
    clients: ClientRepo
    jobs: JobRepo
    deliveries: DeliveryRepo
    limiter: RateLimiter  # job creations per client, shared by all its keys and people
    key_limiter: RateLimiter  # a key's own lower limit, where it has one
    # Each redelivery is a signed POST to a URL the client chose: a burst of 3 per job then one a
    # minute, and 60 per client then one a second, so the endpoint cannot be turned into a cannon.
    redeliveries_per_job: RateLimiter
    redeliveries_per_client: RateLimiter
    # Dashboard accounts. Sign-in attempts from unknown devices are limited per address (trying
    # many accounts), per account and address (guessing one password), and per account (guessing
    # it from many addresses); from a known device, per device and account (control_plane/dashboard/accounts.py).
    # Sign-ups per address.
    users: UserRepo
    devices: KnownDevices
    sign_ins_per_address: RateLimiter
    sign_ins_per_account_address: RateLimiter
    sign_ins_per_account: RateLimiter
    sign_ins_per_device: RateLimiter
    sign_ups_per_address: RateLimiter
    templates: TemplateRepo
    usage: UsageRepo
    signing_keys: SigningKeyRepo  # signed image URLs' keys (control_plane/delivery)
    renders: InFlight  # signed image URLs' renders this process awaits
    served: Served  # signed image URLs' cache hits and bytes sent, counted here, flushed to usage


@asynccontextmanager
async def open_deps(settings: Settings) -> AsyncIterator[ApiDeps]:
    async with AsyncExitStack() as stack:
        pool = await open_pool(settings.database_url, max_size=20)
        stack.push_async_callback(pool.close)
        queue = await open_queue(settings.redis_url, settings.queue_name)
        stack.push_async_callback(queue.aclose)
        store = open_store(settings)
        stack.push_async_callback(store.close)
        await store.ensure_bucket()
        served = Served(pool)
        await stack.enter_async_context(served.flushing(settings.url_usage_flush_seconds))  # before the pool closes
        yield ApiDeps(
            settings,
            pool,
            queue,
            store,
            ClientRepo(pool),
            JobRepo(pool),
            DeliveryRepo(pool),
            RateLimiter(queue, per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst),
            RateLimiter(queue, per_minute=1, burst=1, name="jobs-key"),  # each hit names the key's own rate
            RateLimiter(queue, per_minute=1, burst=3, name="redeliver-job"),
            RateLimiter(queue, per_minute=60, burst=60, name="redeliver-client"),
            UserRepo(pool),
            KnownDevices(queue),
            RateLimiter(queue, per_minute=30, burst=30, name="sign-in-address"),
            # refills slower than the account's below, so one address alone never drains that
            RateLimiter(queue, per_minute=2, burst=5, name="sign-in-account-address"),
            RateLimiter(queue, per_minute=5, burst=10, name="sign-in-account"),
            RateLimiter(queue, per_minute=5, burst=10, name="sign-in-device"),
            RateLimiter(queue, per_minute=5, burst=10, name="sign-up-address"),
            TemplateRepo(pool),
            UsageRepo(pool),
            SigningKeyRepo(pool),
            InFlight(),
            served,
        )


# Handlers take the bag as a parameter named ``deps`` (the key app.py provides it under).
ApiDepsDep = NamedDependency[ApiDeps]
