"""Where PixelFlow keeps things in the bucket: one key layout for both planes.

```
uploads/<client>/<job>               what the job's presigned URL writes; moved to sources/ by
                                     /start; anything left here expires (bucket lifecycle rule)
sources/<client>/<job>               the checked original the worker reads
outputs/<client>/<job>/<variant>.<ext>   by default: after outputs/ comes the client's output key
                                     template (PIXELFLOW_OUTPUT_KEY_TEMPLATE, or its policy's)
assets/<client>/<key>                watermark images; <key> is a DSL AssetKey (checked there)
derived/<client>/<kind>/<id>/<hash>.<ext>   what a signed image URL rendered (docs/delivery.md):
                                     <kind> is `job`, `asset` or `url`, <id> the job's id, the asset's
                                     key percent-encoded or a digest of the URL; <hash> covers
                                     everything its bytes depend on
derived/<client>/asset/<key>/_version   the asset's ETag its derived images were rendered from
```

Every key is built from ids PixelFlow chose, except an asset's key, which the DSL validated, and
the output key template's literal text, checked by ``infra.output_keys``. Each variant's
actual key is recorded with it (``variants.object_key``): deletion and retention read it from
there, so a template changed later never strands an object.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from infra.output_keys import DEFAULT_OUTPUT_KEY_TEMPLATE, render_output_key
from pipeline.formats import FORMATS

if TYPE_CHECKING:
    from infra.storage.base import ObjectStore  # the port only: infra.storage.factory reads this layout

__all__ = [
    "DERIVED_ENGINE_VERSION",
    "OUTPUT_CACHE_CONTROL",
    "UPLOADS_PREFIX",
    "UPLOAD_RETENTION_DAYS",
    "asset_key",
    "delete_derived",
    "delete_original",
    "delete_outputs",
    "derived_hash",
    "derived_key",
    "derived_prefix",
    "discard_originals",
    "erase_job_objects",
    "forget_replaced",
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


def output_key(
    client_id: uuid.UUID, job_id: uuid.UUID, variant_id: str, fmt: str, template: str = DEFAULT_OUTPUT_KEY_TEMPLATE
) -> str:
    """Where a variant is stored: ``outputs/`` and the (checked) template filled in."""
    return f"outputs/{render_output_key(template, client_id, job_id, variant_id, FORMATS[fmt].extension.lstrip('.'))}"


def asset_key(client_id: uuid.UUID, key: str) -> str:
    return f"assets/{client_id}/{key}"


# Part of every derived hash: bump it when the engine's output for the same request changes (a
# libvips upgrade, an encoder's defaults), so no cached image outlives the engine that made it.
DERIVED_ENGINE_VERSION = "1"


def derived_prefix(client_id: uuid.UUID, kind: str, source_id: str) -> str:
    """Everything signed URLs rendered from one source (``kind``: ``job``, ``asset`` or ``url``)."""
    return f"derived/{client_id}/{kind}/{quote(source_id, safe='')}/"


def derived_hash(kind: str, source_id: str, source_version: str, variant: bytes, fmt: str) -> str:
    """The identity of a rendered image: its source and that source's stored version (ETag), the
    normalised variant JSON, the chosen format and the engine version. Same inputs, same bytes."""
    digest = hashlib.sha256()
    for part in (kind, source_id, source_version, fmt, DERIVED_ENGINE_VERSION):
        digest.update(part.encode() + b"\0")
    digest.update(variant)
    return digest.hexdigest()


def derived_key(client_id: uuid.UUID, kind: str, source_id: str, digest: str, fmt: str) -> str:
    return f"{derived_prefix(client_id, kind, source_id)}{digest}{FORMATS[fmt].extension}"


async def delete_derived(store: ObjectStore, client_id: uuid.UUID, kind: str, source_id: str) -> None:
    """Delete what signed URLs rendered from a source. An error propagates."""
    await store.delete_prefix(derived_prefix(client_id, kind, source_id))


_VERSION_MARK = "_version"


async def forget_replaced(store: ObjectStore, client_id: uuid.UUID, kind: str, source_id: str, version: str) -> None:
    """Before rendering from a source whose stored object can be replaced (an asset uploaded
    again under its key): when what was rendered so far came from another version, delete it all.
    Its cache keys hold the old ETag, so nothing would reach those images again. The prefix keeps
    the version it was rendered from in a small object beside them. An error propagates."""
    from infra.storage.base import ObjectNotFound  # here: infra.storage's factory imports this module

    mark = derived_prefix(client_id, kind, source_id) + _VERSION_MARK
    try:
        seen = (await store.read(mark, max_bytes=1024)).decode()
    except ObjectNotFound:
        seen = None
    if seen == version:
        return
    if seen is not None:
        await delete_derived(store, client_id, kind, source_id)
    await store.write(mark, version.encode(), "text/plain")


# The deletions below are the one place objects of a job are removed: DELETE /v1/jobs/{id}
# (erase_job_objects), the retention sweeper (delete_original, delete_outputs) and a failed or
# canceled job's clean-up (discard_originals). Deleting a missing object is not an error, so each
# may be repeated after a partial failure.


async def delete_original(store: ObjectStore, client_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Delete a job's original, uploaded or moved, and what signed URLs rendered from it. An
    error propagates: the caller records nothing and tries again later."""
    for key in (upload_key(client_id, job_id), source_key(client_id, job_id)):
        await store.delete(key)
    await delete_derived(store, client_id, "job", str(job_id))


async def delete_outputs(store: ObjectStore, client_id: uuid.UUID, job_id: uuid.UUID, keys: Iterable[str]) -> None:
    """Delete a job's variants: the keys recorded for them (whatever template named them), and
    anything under the default layout's job prefix, where a run may have written without
    recording. An error propagates."""
    for key in keys:
        await store.delete(key)
    await store.delete_prefix(output_prefix(client_id, job_id))


async def erase_job_objects(
    store: ObjectStore, client_id: uuid.UUID, job_id: uuid.UUID, output_keys: Iterable[str]
) -> None:
    """Delete everything stored for a job: its original and every output. Not best effort: an
    error propagates, so the caller keeps the job and can try again."""
    await delete_original(store, client_id, job_id)
    await delete_outputs(store, client_id, job_id, output_keys)


async def discard_originals(store: ObjectStore, client_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Delete a failed or canceled job's original. Best effort: a store outage leaves it to the
    uploads/ expiry, the retention sweeper or the operator, never fails the caller."""
    with contextlib.suppress(Exception):
        await delete_original(store, client_id, job_id)
