"""The local-storage backend's presigned URLs, served by the API itself (single-machine setups)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get, put
from litestar.params import FromPath, FromQuery, QueryParameter

from control_plane.api.openapi import doc
from control_plane.deps import ApiDepsDep
from control_plane.problems import Forbidden, NotFound, PayloadTooLarge
from infra.storage.local import LocalStore

__all__ = ["storage_get", "storage_put"]


def _local(deps: ApiDepsDep) -> LocalStore:
    store = deps.store
    if not isinstance(store, LocalStore):
        raise NotFound("this deployment stores objects in S3")
    return store


def _verified(
    deps: ApiDepsDep, method: str, key: str, expires: str, max_bytes: str, sig: str
) -> tuple[LocalStore, str]:
    store = _local(deps)
    key = key.lstrip("/")
    if not store.signer.verify(method, key, expires, max_bytes, sig):
        raise Forbidden("the URL is invalid or expired", code="signature_invalid")
    return store, key


# Signed URLs that createJob, getJob and createAssetUpload hand out, not for calling directly:
# the signature in the query is the credential, never an API key.
@put(
    "/v1/storage/{key:path}",
    status_code=200,
    tags=["storage"],
    operation_id="putObject",
    summary="Upload through a presigned URL (local storage)",
    request_max_body_size=None,
    opt=doc(raises=[Forbidden, PayloadTooLarge], body="application/octet-stream"),
)
async def storage_put(
    request: Request,
    deps: ApiDepsDep,
    key: FromPath[str],
    expires: FromQuery[str],
    sig: FromQuery[str],
    max_bytes: Annotated[str, QueryParameter(name="max")] = "0",
) -> Response[None]:
    """The URL's signature covers the method, key, expiry and size cap (403 `signature_invalid`
    otherwise); bodies over the cap are 413."""
    store, key = _verified(deps, "PUT", key, expires, max_bytes, sig)
    cap = int(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"uploads to this URL are limited to {cap} bytes", code="source_too_large")
        chunks.append(chunk)
    await store.write(key, b"".join(chunks), request.headers.get("content-type", "application/octet-stream"))
    return Response(None, status_code=200, media_type="text/plain")  # an empty body, as S3 answers


@get(
    "/v1/storage/{key:path}",
    tags=["storage"],
    operation_id="getObject",
    summary="Download through a presigned URL (local storage)",
    opt=doc(raises=[Forbidden, NotFound], returns="*/*"),
)
async def storage_get(
    deps: ApiDepsDep,
    key: FromPath[str],
    expires: FromQuery[str],
    sig: FromQuery[str],
    max_bytes: Annotated[str, QueryParameter(name="max")] = "0",
) -> Response[bytes]:
    """The object's bytes, typed by what they are; 403 `signature_invalid` for a bad or expired URL."""
    store, key = _verified(deps, "GET", key, expires, max_bytes, sig)
    info = await store.stat(key)
    if info is None:
        raise NotFound("no such object")
    data = await store.read(key, max_bytes=info.size)
    return Response(data, media_type=_content_type(data))


def _content_type(data: bytes) -> str:
    from pipeline.errors import UnsupportedFormat
    from pipeline.formats import FORMATS
    from pipeline.sniff import sniff

    try:
        return FORMATS[sniff(data[:4096])].mime
    except UnsupportedFormat:
        return "application/octet-stream"
