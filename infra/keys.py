"""API keys: 192 random bits with a visible prefix. Stored as SHA-256 (a slow hash adds nothing
for keys this long), compared by lookup on the hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_key", "new_key"]

KEY_PREFIX = "pf_"


def new_key() -> tuple[str, str]:
    """(the key, shown once; its display prefix)."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    return key, key[:10]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
