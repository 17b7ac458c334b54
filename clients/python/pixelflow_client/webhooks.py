"""Verify a PixelFlow webhook (Standard Webhooks) and parse it into a typed event.

event = verify(secret, request.headers, request.body)   # raises WebhookVerificationError
if seen(event.id): return 200                             # retries and redeliveries share the id
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

import msgspec

from pixelflow_client.errors import WebhookVerificationError
from pixelflow_client.models import WebhookEvent

__all__ = ["verify"]

TOLERANCE_SECONDS = 300  # Standard Webhooks: refuse timestamps further than 5 minutes away


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> WebhookEvent:
    """Check the signature (any of the space-separated ``v1,`` signatures sent during a secret
    rotation) and the timestamp, then parse. ``headers`` is case-insensitive or lower-case."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, signatures = lower["webhook-id"], lower["webhook-timestamp"], lower["webhook-signature"]
        sent = int(stamp)
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook-* headers") from None
    if abs((now if now is not None else time.time()) - sent) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance: a replay, or a clock far off")
    expected = base64.b64encode(
        hmac.new(_key(secret), f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    offered = [s.split(",", 1)[1] for s in signatures.split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, s) for s in offered):
        raise WebhookVerificationError("no signature matches this secret")
    try:
        event = msgspec.json.decode(body, type=WebhookEvent)
    except msgspec.ValidationError as exc:
        raise WebhookVerificationError(f"not a PixelFlow event: {exc}") from None
    return msgspec.structs.replace(event, id=msg_id)
