"""Where PixelFlow keeps things in the bucket: one key layout for both planes.

```
uploads/<client>/<job>               what the job's presigned URL writes; moved to sources/ by
                                     /start; anything left here expires (bucket lifecycle rule)
sources/<client>/<job>               the checked original the worker reads
outputs/<client>/<job>/<variant>.<ext>
assets/<client>/<key>                watermark images; <key> is a DSL AssetKey (checked there)
```

Every key is built from ids PixelFlow chose, except an asset's key, which the DSL validated.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING

from pipeline.sniff import EXTENSIONS

if TYPE_CHECKING:
    from infra.storage import ObjectStore

__all__ = [
    "OUTPUT_CACHE_CONTROL",
    "UPLOADS_PREFIX",
    "UPLOAD_RETENTION_DAYS",
    "asset_key",
    "discard_originals",
    "erase_job_objects",
    "output_key",
    "source_key",
    "upload_key",
]

UPLOADS_PREFIX = "uploads/"
# A presigned PUT cannot be revoked and carries no size limit: whatever a client writes to its URL
# after /start (or without ever starting) lands under uploads/ and is deleted by the store a day later.
UPLOAD_RETENTION_DAYS = 1
# An output's key names its job and variant, so its bytes never change under that URL: a CDN and
# browsers may keep it for a year without revalidating.
OUTPUT_CACHE_CONTROL = "public, max-age=31536000, immutable"


def upload_key(client_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"{UPLOADS_PREFIX}{client_id}/{job_id}"


def source_key(client_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"sources/{client_id}/{job_id}"


def output_prefix(client_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"outputs/{client_id}/{job_id}/"


def output_key(client_id: uuid.UUID, job_id: uuid.UUID, variant_id: str, fmt: str) -> str:
    return f"{output_prefix(client_id, job_id)}{variant_id}{EXTENSIONS[fmt]}"


def asset_key(client_id: uuid.UUID, key: str) -> str:
    return f"assets/{client_id}/{key}"


async def erase_job_objects(store: ObjectStore, client_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Delete everything stored for a job: its original (uploaded or moved) and every output,
    including any a run wrote but never recorded. Not best effort: an error propagates, so the
    caller keeps the job and can try again."""
    for key in (upload_key(client_id, job_id), source_key(client_id, job_id)):
        await store.delete(key)
    await store.delete_prefix(output_prefix(client_id, job_id))


async def discard_originals(store: ObjectStore, client_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Delete a failed or canceled job's original (uploaded or moved). Best effort: a store
    outage leaves it to the uploads/ expiry or to the operator, never fails the caller."""
    for key in (upload_key(client_id, job_id), source_key(client_id, job_id)):
        with contextlib.suppress(Exception):
            await store.delete(key)
