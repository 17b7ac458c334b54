"""API keys: 192 random bits with a visible prefix. Stored as SHA-256 (a slow hash adds nothing
for keys this long), compared by lookup on the hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["SCOPES", "hash_key", "new_key"]

KEY_PREFIX = "pf_"
# What a scoped key may do. A key without scopes (every key made before scopes existed, and those
# made without --scope) may do everything; reading templates needs no scope (using them does).
SCOPES = ("jobs:read", "jobs:write", "templates:write", "assets:write")


def new_key() -> tuple[str, str]:
    """(the key, shown once; its display prefix)."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    return key, key[:10]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
