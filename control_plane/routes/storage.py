"""The local-storage backend's presigned URLs, served by the API itself (single-machine setups)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get, put
from litestar.params import FromPath, FromQuery, QueryParameter

from control_plane.deps import ApiDepsDep
from control_plane.problems import Forbidden, NotFound, PayloadTooLarge
from infra.storage.local import LocalStore

__all__ = ["storage_get", "storage_put"]


def _local(services: ApiDepsDep) -> LocalStore:
    store = services.store
    if not isinstance(store, LocalStore):
        raise NotFound("this deployment stores objects in S3")
    return store


def _verified(
    services: ApiDepsDep, method: str, key: str, expires: str, max_bytes: str, sig: str
) -> tuple[LocalStore, str]:
    store = _local(services)
    key = key.lstrip("/")
    if not store.signer.verify(method, key, expires, max_bytes, sig):
        raise Forbidden("the URL is invalid or expired", code="signature_invalid")
    return store, key


@put("/v1/storage/{key:path}", status_code=200, include_in_schema=False, request_max_body_size=None)
async def storage_put(
    request: Request,
    services: ApiDepsDep,
    key: FromPath[str],
    expires: FromQuery[str],
    sig: FromQuery[str],
    max_bytes: Annotated[str, QueryParameter(name="max")] = "0",
) -> Response[None]:
    store, key = _verified(services, "PUT", key, expires, max_bytes, sig)
    cap = int(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"uploads to this URL are limited to {cap} bytes", code="source_too_large")
        chunks.append(chunk)
    await store.write(key, b"".join(chunks), request.headers.get("content-type", "application/octet-stream"))
    return Response(None, status_code=200)


@get("/v1/storage/{key:path}", include_in_schema=False)
async def storage_get(
    services: ApiDepsDep,
    key: FromPath[str],
    expires: FromQuery[str],
    sig: FromQuery[str],
    max_bytes: Annotated[str, QueryParameter(name="max")] = "0",
) -> Response[bytes]:
    store, key = _verified(services, "GET", key, expires, max_bytes, sig)
    info = await store.stat(key)
    if info is None:
        raise NotFound("no such object")
    data = await store.read(key, max_bytes=info.size)
    return Response(data, media_type=_content_type(data))


def _content_type(data: bytes) -> str:
    from pipeline.errors import UnsupportedFormat
    from pipeline.sniff import CONTENT_TYPES, sniff

    try:
        return CONTENT_TYPES[sniff(data[:4096])]
    except UnsupportedFormat:
        return "application/octet-stream"
