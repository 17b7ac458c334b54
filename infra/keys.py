"""API keys: 192 random bits with a visible prefix. Stored as SHA-256 (a slow hash adds nothing
for keys this long), compared by lookup on the hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["NOT_FOR_PRESETS_ONLY", "SCOPES", "check_grant", "hash_key", "held_scopes", "new_key"]

KEY_PREFIX = "pf_"
# What a scoped key may do. A key without scopes (every key made before scopes existed, and those
# made without --scope) may do everything; reading templates needs no scope (using them does).
SCOPES = ("jobs:read", "jobs:write", "templates:write", "assets:write")
# What a presets-only key never holds, whatever it was made with (keys made before this rule
# included): a key that may save a template could run any spec through the template it just saved.
NOT_FOR_PRESETS_ONLY = frozenset({"templates:write"})


def check_grant(scopes: tuple[str, ...] | None, presets_only: bool, rate_limit_per_minute: int | None) -> None:
    """ValueError naming what a new key may not have."""
    if scopes is not None and not set(scopes) <= set(SCOPES):
        raise ValueError(f"unknown scopes: {sorted(set(scopes) - set(SCOPES))}; known: {', '.join(SCOPES)}")
    if presets_only and scopes is not None and (withheld := NOT_FOR_PRESETS_ONLY & set(scopes)):
        raise ValueError(f"a presets-only key cannot hold {', '.join(sorted(withheld))}")
    if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
        raise ValueError("a key's rate limit is at least 1 a minute")


def held_scopes(scopes: tuple[str, ...] | frozenset[str] | None, presets_only: bool) -> frozenset[str] | None:
    """What a key may do (None: everything): its scopes, less what presets-only keys never hold."""
    if not presets_only:
        return frozenset(scopes) if scopes is not None else None
    return frozenset(SCOPES if scopes is None else scopes) - NOT_FOR_PRESETS_ONLY


def new_key() -> tuple[str, str]:
    """(the key, shown once; its display prefix)."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    return key, key[:10]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
