"""Known devices: a browser that signed in to an account (or signed up, or accepted an invitation)
carries a random token in the ``pixelflow_device`` cookie, and Redis remembers that token for
that account for ``DEVICE_LIFETIME``, renewed at each sign-in. Sign-in attempts from a known
device spend that device's own budget instead of the budgets strangers share (per address, per
account), so a spray of wrong passwords cannot lock the owner out (control_plane/dashboard/accounts.py).

Redis holds a digest of the token, never the token; losing Redis only makes devices unknown again.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TypeGuard

from redis.asyncio import Redis

__all__ = ["DEVICE_LIFETIME", "KnownDevices", "device_digest"]

DEVICE_LIFETIME = timedelta(days=30)
_PREFIX = "pfd_"


def device_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _well_formed(token: str | None) -> TypeGuard[str]:
    return token is not None and token.startswith(_PREFIX) and 20 <= len(token) <= 100


class KnownDevices:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def _key(self, token: str, account: str) -> str:
        return f"pixelflow:device:{device_digest(token)}:{account}"

    async def knows(self, token: str | None, account: str) -> bool:
        """Whether ``token`` (the cookie's value, maybe absent or forged) signed in to ``account`` lately."""
        return _well_formed(token) and bool(await self.redis.exists(self._key(token, account)))

    async def remember(self, token: str | None, account: str) -> str:
        """The device's token, now known to ``account``: the one the browser sent (one browser,
        several accounts), or a new one."""
        if not _well_formed(token):
            token = _PREFIX + secrets.token_urlsafe(24)
        assert token is not None
        await self.redis.set(self._key(token, account), b"1", ex=DEVICE_LIFETIME)
        return token
