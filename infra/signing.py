"""Signed image URLs: ``/img/{sig}/{kid}/{options...}/{source}`` (docs/delivery.md).

``sig`` is the unpadded base64url HMAC-SHA256 of everything after it, from its ``/``, exactly as
sent (percent-encoding included), keyed with the signing key's secret as UTF-8. The SDK
(clients/python/pixelflow_client/urls.py) signs the same way; this is the one verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["KEY_ID_PREFIX", "new_signing_key", "sign_path", "signature_matches"]

KEY_ID_PREFIX = "sk_"
SECRET_PREFIX = "pfk_"  # noqa: S105 (a prefix, not a secret): recognisable to secret scanners and to the log scrubber (infra/logs.py)


def new_signing_key() -> tuple[str, str]:
    """A new key's public id and its secret."""
    return KEY_ID_PREFIX + secrets.token_hex(6), SECRET_PREFIX + secrets.token_urlsafe(32)


def sign_path(secret: str, path: str) -> str:
    """The signature of ``path`` (``/{kid}/{options...}/{source}``)."""
    mac = hmac.new(secret.encode(), path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signature_matches(secret: str, path: str, signature: str) -> bool:
    """In constant time, whatever the signature sent."""
    return hmac.compare_digest(sign_path(secret, path).encode(), signature.encode("utf-8", "replace"))
