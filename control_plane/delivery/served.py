"""What signed image URLs served, counted in this API process: cache hits and bytes sent per
client and UTC day of the request. A hit costs no database write: the counts are added to
``url_usage`` by one UPSERT per client and day every ``PIXELFLOW_URL_USAGE_FLUSH_SECONDS`` and
when the app stops (its lifespan), so a crashed process loses at most one interval's counts.
One per app, in its dependencies; nothing shared at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

from psycopg_pool import AsyncConnectionPool

from infra.repo.usage import add_served

__all__ = ["Served"]

log = logging.getLogger(__name__)


class Served:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._counts: dict[tuple[uuid.UUID, date], tuple[int, int]] = {}

    def count(self, client_id: uuid.UUID, *, hit: bool, sent: int) -> None:
        """One answered request: a cache hit (a 304 too) or a render, and the image bytes it sent."""
        key = (client_id, datetime.now(UTC).date())
        hits, total = self._counts.get(key, (0, 0))
        self._counts[key] = (hits + int(hit), total + sent)

    async def flush(self) -> None:
        """Add the counts so far to the database. On an error they are kept for the next flush."""
        counts, self._counts = self._counts, {}
        try:
            await add_served(self._pool, counts)
        except BaseException:
            for key, (hits, sent) in counts.items():  # merged back with what came in meanwhile
                now_hits, now_sent = self._counts.get(key, (0, 0))
                self._counts[key] = (now_hits + hits, now_sent + sent)
            raise

    @contextlib.asynccontextmanager
    async def flushing(self, every: float) -> AsyncIterator[None]:
        """Flush every ``every`` seconds while the context is open, and once more as it closes."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.flush()
                except Exception:  # the database is down: the counts wait for the next try
                    log.warning("url usage flush failed; kept for the next one", exc_info=True)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await self.flush()
            except Exception:
                log.exception("url usage: the last flush failed; these counts are lost")
