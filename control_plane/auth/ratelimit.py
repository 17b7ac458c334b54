"""Rate limiting with GCRA, atomically in Redis (one Lua script, Redis's own clock).

GCRA keeps one timestamp per key (the theoretical arrival time), so it is exact, needs no
cleanup job, and allows a burst of ``burst`` requests then ``per_minute`` sustained.
Headers follow draft-ietf-httpapi-ratelimit-headers: ``RateLimit-Policy`` and ``RateLimit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

__all__ = ["Decision", "RateLimiter"]

_GCRA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now, 0, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now}
"""

# Gives one request back: what a hit added to the timestamp, taken off again (never below now).
_REFUND = """
local interval = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local new_tat = tat - interval
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until one more request is allowed
    reset: float  # seconds until the full burst is available again

    name: str
    policy: str

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Policy": self.policy,
            "RateLimit": f'"{self.name}";r={self.remaining};t={math.ceil(self.reset)}',
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


class RateLimiter:
    def __init__(self, redis: Redis, *, per_minute: int, burst: int, name: str = "jobs") -> None:
        self.redis = redis
        self.interval_us = 60_000_000 / per_minute
        self.tolerance_us = self.interval_us * burst
        self.name = name
        self.policy = f'"{name}";q={burst};w={math.ceil(self.tolerance_us / 1_000_000)}'
        self._script = redis.register_script(_GCRA)
        self._refund = redis.register_script(_REFUND)

    def _key(self, key: str) -> str:
        return f"pixelflow:rl:{self.name}:{key}"

    async def hit(self, key: str, *, per_minute: int | None = None, burst: int | None = None) -> Decision:
        """``per_minute`` and ``burst`` override the limiter's own for this key (a client's policy)."""
        interval_us, tolerance_us, policy = self.interval_us, self.tolerance_us, self.policy
        if per_minute is not None or burst is not None:
            interval_us = 60_000_000 / per_minute if per_minute else self.interval_us
            tolerance_us = interval_us * (burst or round(self.tolerance_us / self.interval_us))
            policy = f'"{self.name}";q={round(tolerance_us / interval_us)};w={math.ceil(tolerance_us / 1_000_000)}'
        allowed, retry_us, remaining, reset_us = await self._script(
            keys=[self._key(key)], args=[interval_us, tolerance_us]
        )
        return Decision(
            bool(allowed), max(0, int(remaining)), retry_us / 1_000_000, reset_us / 1_000_000, self.name, policy
        )

    async def refund(self, key: str, *, per_minute: int | None = None) -> None:
        """Give back one allowed ``hit`` (with the same ``per_minute``): a request that a later
        check refused, or a sign-in that succeeded, costs nothing. Charging first and refunding
        after keeps the check atomic: concurrent requests cannot all pass before any is counted."""
        interval_us = 60_000_000 / per_minute if per_minute else self.interval_us
        await self._refund(keys=[self._key(key)], args=[interval_us])
