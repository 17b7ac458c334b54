"""The arq queue: connection, task names and enqueueing. Jobs are serialised with msgpack
(msgspec), never pickle, so a crafted queue entry cannot execute code in a worker."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix

from infra.lifecycle import Priority

__all__ = [
    "PROCESS_JOB",
    "SEND_WEBHOOK",
    "announce_cancel",
    "cancel_channel",
    "deserialize",
    "dispatch_job",
    "interactive_queue",
    "interactive_ticket",
    "open_queue",
    "queue_webhook",
    "redis_settings",
    "serialize",
    "wake_interactive",
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


async def dispatch_job(
    queue: ArqRedis,
    job_id: uuid.UUID,
    dispatch: uuid.UUID,
    trace_headers: dict[str, str] | None = None,
    *,
    defer_by: float | None = None,
    interactive: bool = True,
) -> bool:
    """Wake workers for one run of a job. A message is a claim ticket, not an assignment: the
    worker that takes it claims whichever job is fairest to run next (``JobRepo.claim_next``),
    and every queued job has one ticket out, so tickets and claimable jobs stay level. The arq id
    is the dispatch token, so each hand-back is a new message and re-sending one still waiting or
    running (the sweeper) is a no-op. ``interactive``: also leave a ticket for the interactive
    slots (false when the deployment has none, or the tickets would pile up). Call this only
    after the row that made the job ``queued`` under ``dispatch`` is committed: a worker that
    takes the message earlier finds nothing to claim."""
    args = (PROCESS_JOB, str(job_id), str(dispatch), trace_headers)
    sent = await _enqueue_once(queue, *args, _job_id=f"{PROCESS_JOB}:{dispatch}", _defer_by=defer_by)
    if interactive:
        lane = interactive_queue(queue.default_queue_name)
        await _enqueue_once(queue, *args, _job_id=f"{PROCESS_JOB}:{dispatch}:i", _queue_name=lane, _defer_by=defer_by)
    return sent


async def wake_interactive(queue: ArqRedis) -> None:
    """One more ticket for the interactive slots, not tied to a job: a slot that takes it claims
    whatever may run there now, or nothing."""
    await queue.enqueue_job(
        PROCESS_JOB, "", "", None,
        _job_id=f"{PROCESS_JOB}:wake:{uuid.uuid4()}", _queue_name=interactive_queue(queue.default_queue_name),
    )  # fmt: skip


def interactive_ticket(interactive_slots: int, priority: int, *, alone: bool = False) -> bool:
    """Whether a job's dispatch also leaves a ticket for the interactive slots: only where one can
    be used (the deployment has such slots) by a job that may run there: an interactive one
    (``priority`` is its rank), or, at its start, one whose client has nothing else queued or
    running (``alone``). A job that becomes eligible later is found by ``wake_interactive``."""
    return interactive_slots > 0 and (priority == Priority.INTERACTIVE.rank or alone)


def interactive_queue(queue_name: str) -> str:
    """The arq queue of a deployment's interactive slots."""
    return f"{queue_name}:interactive"


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
    return await _enqueue_once(
        queue,
        SEND_WEBHOOK,
        str(delivery_id),
        trace_headers,
        _job_id=f"{SEND_WEBHOOK}:{delivery_id}",
        _queue_name=queue_name,
        _defer_by=defer_by,
        _job_try=round_no,
    )


async def _enqueue_once(queue: ArqRedis, task: str, *args: Any, _job_id: str, **options: Any) -> bool:
    """Enqueue unless a message with this id is waiting or running; False then.

    arq also refuses an id while it keeps a finished run's result (``keep_result``). That record
    is history, not a pending hand-off: a run that found nothing to claim, or one that gave up
    on a database blip, would otherwise block the sweeper's re-send of the same id for as long
    as the result lives (an hour by default). So such a record is dropped and the id sent again.
    """
    if await queue.enqueue_job(task, *args, _job_id=_job_id, **options) is not None:
        return True
    if await queue.exists(job_key_prefix + _job_id, in_progress_key_prefix + _job_id):
        return False  # really waiting, deferred or running
    await queue.delete(result_key_prefix + _job_id)
    return await queue.enqueue_job(task, *args, _job_id=_job_id, **options) is not None
