"""The arq queue: connection, task names and enqueueing. Jobs are serialised with msgpack
(msgspec), never pickle, so a crafted queue entry cannot execute code in a worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool

__all__ = [
    "PROCESS_JOB",
    "SEND_WEBHOOK",
    "announce_cancel",
    "cancel_channel",
    "deserialize",
    "dispatch_job",
    "enqueue",
    "open_queue",
    "queue_webhook",
    "redis_settings",
    "serialize",
]

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


async def dispatch_job(
    queue: ArqRedis,
    job_id: uuid.UUID,
    dispatch: uuid.UUID,
    trace_headers: dict[str, str] | None = None,
    *,
    defer_by: float | None = None,
) -> bool:
    """Queue one run of a job. The arq id is the dispatch token, so each hand-back is a new
    message and re-sending the same one (the sweeper after a Redis restart) is a no-op."""
    job = await queue.enqueue_job(
        PROCESS_JOB, str(job_id), str(dispatch), trace_headers, _job_id=f"{PROCESS_JOB}:{dispatch}", _defer_by=defer_by
    )
    return job is not None


def cancel_channel(queue_name: str) -> str:
    return f"{queue_name}:cancel"


async def announce_cancel(queue: ArqRedis, queue_name: str, job_id: uuid.UUID) -> None:
    """Tell every worker to stop this job now. Fire-and-forget: a worker that misses it notices
    at its next lease renewal."""
    await queue.publish(cancel_channel(queue_name), str(job_id))


async def queue_webhook(
    queue: ArqRedis,
    queue_name: str,
    delivery_id: uuid.UUID,
    trace_headers: dict[str, str] | None = None,
    *,
    defer_by: float | None = None,
    round_no: int | None = None,
) -> bool:
    """Queue a round of a webhook delivery on the webhook queue (once per delivery at a time).
    ``round_no``: which round of the long schedule this is (arq's try counter)."""
    job = await queue.enqueue_job(
        SEND_WEBHOOK,
        str(delivery_id),
        trace_headers,
        _job_id=f"{SEND_WEBHOOK}:{delivery_id}",
        _queue_name=queue_name,
        _defer_by=defer_by,
        _job_try=round_no,
    )
    return job is not None
