"""Webhook event bodies. Built once when the job finishes and stored, so every retry sends the
same bytes under the same ``webhook-id``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.repo import Job, VariantRecord
from infra.repo.jobs import NewDelivery
from infra.storage import ObjectStore

__all__ = ["job_event"]

# SigV4 presigned URLs live at most 7 days; receivers needing them later use the API.
_URL_EXPIRY = timedelta(days=7)


def job_event(
    job: Job,
    store: ObjectStore,
    *,
    status: str,
    variants: list[VariantRecord] = (),  # type: ignore[assignment]
    error: tuple[str, str] | None = None,
) -> NewDelivery | None:
    url = job.spec.get("webhook_url")
    if not url:
        return None
    data: dict[str, Any] = {
        "job_id": str(job.id),
        "status": status,
        "attempts": job.attempts,
        "metadata": job.spec.get("metadata"),
        "variants": [
            {
                "id": v.variant_id,
                "format": v.format,
                "content_type": v.content_type,
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "url": store.presign_get(v.object_key, expires=_URL_EXPIRY),
            }
            for v in variants
        ],
        "error": {"code": error[0], "message": error[1]} if error else None,
    }
    event = f"job.{status}"
    payload = {"type": event, "timestamp": datetime.now(UTC).isoformat(), "data": data}
    return NewDelivery(event=event, url=url, payload=payload)
