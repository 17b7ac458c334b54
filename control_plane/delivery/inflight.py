"""This process's renders in progress, by derived key: a request for one already awaited here
joins it instead of polling the database beside it (across processes, the render job's
idempotency key does the same). One per app, in its dependencies; nothing shared at import time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["InFlight"]

T = TypeVar("T")


class InFlight:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}

    async def once(self, key: str, make: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``make()``'s result, and whether this call joined one already running."""
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running), True  # a waiter that goes away leaves the render alone
        task: asyncio.Future[T] = asyncio.ensure_future(make())
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), False

    def _finished(self, key: str, task: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone; each that stayed got it
