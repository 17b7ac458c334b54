"""Errors that mean a backing service is briefly unavailable (a restart, a failover, a network
blip), not that the request or the job is wrong: the API answers 503 with Retry-After, the
worker retries later. One set, so both planes agree on what is transient."""

from __future__ import annotations

import psycopg
import psycopg_pool
import redis.exceptions

from infra.storage import StorageUnavailable

__all__ = ["TRANSIENT"]

TRANSIENT: tuple[type[Exception], ...] = (
    StorageUnavailable,
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # redis-py raises this, not ConnectionError, when the connection drops inside WATCH (arq's
    # enqueue); a real WATCH conflict is caught by arq itself and never reaches us
    redis.exceptions.WatchError,
    ConnectionError,  # sockets reset or refused under the clients above
    TimeoutError,
)
