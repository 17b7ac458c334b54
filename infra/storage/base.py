"""The storage port. Keys are opaque strings chosen by PixelFlow, never by clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import quote

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "PresignedUpload",
    "StorageUnavailable",
    "cdn_url",
    "require_within",
    "transient_retry",
]


class StorageUnavailable(Exception):
    """The store could not be reached or answered with a server error; worth retrying."""


class ObjectNotFound(Exception):
    pass


class ObjectTooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    content_type: str | None
    version: str | None = None  # changes whenever the bytes do (S3: the ETag); the derived cache keys on it


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    method: Literal["PUT", "POST"]
    url: str
    expires_at: datetime
    fields: dict[str, str] = field(default_factory=dict)  # form fields for POST
    headers: dict[str, str] = field(default_factory=dict)  # headers the client must send with PUT


class ObjectStore(Protocol):
    async def ensure_bucket(self) -> None: ...
    async def ping(self) -> None: ...
    def presign_put(self, key: str, *, expires: timedelta, max_bytes: int) -> PresignedUpload: ...
    def presign_post(self, key: str, *, expires: timedelta, max_bytes: int) -> PresignedUpload | None: ...
    def presign_get(self, key: str, *, expires: timedelta) -> str: ...
    def public_url(self, key: str, *, expires: timedelta) -> str:
        """How clients fetch an output: under the CDN base URL when one is set (stable), else presigned."""
        ...

    async def stat(self, key: str) -> ObjectInfo | None: ...
    async def read(self, key: str, *, max_bytes: int) -> bytes: ...
    async def read_head(self, key: str, length: int) -> bytes: ...
    async def write(self, key: str, data: bytes, content_type: str, *, cache_control: str | None = None) -> None: ...
    async def move(self, src: str, dst: str) -> None:
        """Server-side copy then delete; ``ObjectNotFound`` if ``src`` is missing."""
        ...

    async def copy(self, src: str, dst: str) -> None:
        """Server-side copy; ``ObjectNotFound`` if ``src`` is missing."""
        ...

    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many there were."""
        ...

    async def close(self) -> None: ...


def cdn_url(base: str, key: str) -> str:
    """``PIXELFLOW_CDN_BASE_URL`` + the object's key: the CDN maps that path to the bucket's object."""
    return f"{base}/{quote(key)}"


def require_within(info: ObjectInfo | None, key: str, max_bytes: int) -> ObjectInfo:
    """The object's info, or the error a reader of at most ``max_bytes`` must raise."""
    if info is None:
        raise ObjectNotFound(key)
    if info.size > max_bytes:
        raise ObjectTooLarge(f"{info.size} bytes")
    return info


def transient_retry(max_seconds: float = 20.0) -> AsyncRetrying:
    """Short in-process retries for a store that is restarting or briefly overloaded."""
    return AsyncRetrying(
        retry=retry_if_exception_type(StorageUnavailable),
        wait=wait_exponential_jitter(multiplier=0.2, max=3.0),
        stop=stop_after_delay(max_seconds),
        reraise=True,
    )
