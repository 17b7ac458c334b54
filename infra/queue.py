"""The arq queue: connection, task names and enqueueing. Jobs are serialised with msgpack
(msgspec), never pickle, so a crafted queue entry cannot execute code in a worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool

__all__ = ["PROCESS_JOB", "SEND_WEBHOOK", "deserialize", "enqueue", "open_queue", "redis_settings", "serialize"]

PROCESS_JOB = "process_job"
SEND_WEBHOOK = "send_webhook"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def serialize(obj: dict[str, Any]) -> bytes:
    return _encoder.encode(obj)


def deserialize(data: bytes) -> dict[str, Any]:
    return _decoder.decode(data)


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 3
    settings.conn_retries = 3
    return settings


async def open_queue(url: str, queue_name: str) -> ArqRedis:
    return await create_pool(
        redis_settings(url), job_serializer=serialize, job_deserializer=deserialize, default_queue_name=queue_name
    )


async def enqueue(
    queue: ArqRedis,
    task: str,
    key: str,
    *args: Any,
    queue_name: str | None = None,
    defer_until: datetime | None = None,
    job_id: str | None = None,
) -> bool:
    """Enqueue ``task`` once per ``job_id`` (default ``task:key``); False if it is already queued,
    running, or finished within arq's result-retention window."""
    job = await queue.enqueue_job(
        task, key, *args, _job_id=job_id or f"{task}:{key}", _queue_name=queue_name, _defer_until=defer_until
    )
    return job is not None
