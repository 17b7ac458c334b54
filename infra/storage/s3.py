"""S3 through the MinIO SDK: runs unchanged against MinIO, AWS S3 or LocalStack.

Two clients: one talks to the internal endpoint; the other only signs URLs for the public
endpoint (a SigV4 signature covers the host, so the URL must be signed for the host clients use).
Its region is fixed, so presigning never makes a network call.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, CopySource, Filter
from minio.datatypes import PostPolicy
from minio.error import S3Error
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, Expiration, LifecycleConfig, Rule

from infra.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    PresignedUpload,
    StorageUnavailable,
    cdn_url,
    require_within,
    transient_retry,
)

__all__ = ["S3Store"]

T = TypeVar("T")
log = logging.getLogger("pixelflow.storage")
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}


def _http() -> urllib3.PoolManager:
    # minio's default retries a refused connection for a long time; fail fast and let tenacity
    # (transient_retry) own the schedule, so a stopped store surfaces in seconds, not minutes.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3.0, read=30.0),
        maxsize=16,
        retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]),
    )


class S3Store:
    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str,
        secure: bool = False,
        public_endpoint: str | None = None,
        public_secure: bool | None = None,
        cors_origins: tuple[str, ...] = (),
        cdn_base_url: str | None = None,
        expire: tuple[str, int] | None = None,
    ) -> None:
        """``expire``: a key prefix, and the days after which the bucket deletes what is under it
        (set by ``ensure_bucket``; the caller knows the key layout, this store does not)."""
        self.bucket = bucket
        self.expire = expire
        self.cdn_base_url = cdn_base_url
        self.cors_origins = cors_origins
        minio = functools.partial(Minio, access_key=access_key, secret_key=secret_key, region=region)
        public = public_endpoint or endpoint
        public_tls = secure if public_secure is None else public_secure
        self._client = minio(endpoint, secure=secure, http_client=_http())
        self._signer = minio(public, secure=public_tls)
        self._public_base = f"{'https' if public_tls else 'http'}://{public}"

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async for attempt in transient_retry():
            with attempt:
                return await asyncio.to_thread(self._guard, fn, *args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _guard(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(exc.code) from None
            if exc.response is not None and exc.response.status >= 500:
                raise StorageUnavailable(exc.code) from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(type(exc).__name__) from None

    async def ensure_bucket(self) -> None:
        if not await self._call(self._client.bucket_exists, self.bucket):
            try:
                await self._call(self._client.make_bucket, self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        if self.expire is not None:
            await self._expire_abandoned_uploads(*self.expire)
        if self.cors_origins:
            await self._allow_browser_origins()

    async def ping(self) -> None:
        await asyncio.to_thread(self._guard, self._client.bucket_exists, self.bucket)

    def presign_put(self, key: str, *, expires: timedelta, max_bytes: int) -> PresignedUpload:
        url = self._signer.presigned_put_object(self.bucket, key, expires=expires)
        return PresignedUpload("PUT", url, datetime.now(UTC) + expires)

    def presign_post(self, key: str, *, expires: timedelta, max_bytes: int) -> PresignedUpload | None:
        expires_at = datetime.now(UTC) + expires
        policy = PostPolicy(self.bucket, expires_at)
        policy.add_equals_condition("key", key)
        policy.add_content_length_range_condition(1, max_bytes)
        # No Content-Type condition: the returned fields cannot carry one (the file's type is not
        # known yet), so a form used as returned was refused (403); /start reads the bytes anyway.
        fields = self._signer.presigned_post_policy(policy)
        return PresignedUpload("POST", f"{self._public_base}/{self.bucket}", expires_at, fields={**fields, "key": key})

    def presign_get(self, key: str, *, expires: timedelta) -> str:
        return self._signer.presigned_get_object(self.bucket, key, expires=expires)

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = await self._call(self._client.stat_object, self.bucket, key)
        except ObjectNotFound:
            return None
        return ObjectInfo(size=st.size or 0, content_type=st.content_type, version=st.etag)

    def _get(self, key: str, offset: int = 0, length: int = 0) -> bytes:
        response = self._client.get_object(self.bucket, key, offset=offset, length=length)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def read(self, key: str, *, max_bytes: int) -> bytes:
        require_within(await self.stat(key), key, max_bytes)
        data = await self._call(self._get, key)
        if len(data) > max_bytes:  # replaced between stat and get
            raise ObjectTooLarge(f"{len(data)} bytes")
        return data

    async def read_head(self, key: str, length: int) -> bytes:
        return await self._call(self._get, key, 0, length)

    def public_url(self, key: str, *, expires: timedelta) -> str:
        return cdn_url(self.cdn_base_url, key) if self.cdn_base_url else self.presign_get(key, expires=expires)

    async def write(self, key: str, data: bytes, content_type: str, *, cache_control: str | None = None) -> None:
        headers = {"Cache-Control": cache_control} if cache_control else None  # a standard header, not x-amz-meta-
        await self._call(
            self._client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata=headers,
        )

    async def move(self, src: str, dst: str) -> None:
        await self.copy(src, dst)
        await self.delete(src)

    async def copy(self, src: str, dst: str) -> None:
        await self._call(self._client.copy_object, self.bucket, dst, CopySource(self.bucket, src))

    async def delete(self, key: str) -> None:
        await self._call(self._client.remove_object, self.bucket, key)

    async def delete_prefix(self, prefix: str) -> int:
        def keys() -> list[str]:
            return [o.object_name for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]

        found = await self._call(keys)
        for key in found:
            await self.delete(key)
        return len(found)

    async def lifecycle_rules(self) -> list[dict[str, object]]:
        """The bucket's expiration rules as ``{"prefix", "days"}``, for checks and tests."""
        config = await self._call(self._client.get_bucket_lifecycle, self.bucket)
        rules = config.rules if config is not None else []
        return [
            {
                "prefix": r.rule_filter.prefix if r.rule_filter else None,
                "days": r.expiration.days if r.expiration else None,
            }
            for r in rules
        ]

    async def _expire_abandoned_uploads(self, prefix: str, days: int) -> None:
        """Whatever a presigned URL writes under uploads/ is gone a day later (and so are the
        parts of abandoned multipart uploads): the URLs stay useless once their job started."""
        rule = Rule(
            ENABLED,
            rule_filter=Filter(prefix=prefix),
            rule_id="pixelflow-expire-uploads",
            expiration=Expiration(days=days),
            abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(days_after_initiation=1),
        )
        try:
            await self._call(self._client.set_bucket_lifecycle, self.bucket, LifecycleConfig([rule]))
        except S3Error as exc:  # a store without lifecycle support: say so, keep serving
            log.warning("could not set the uploads/ expiry rule; expire it yourself", extra={"error": exc.code})

    async def _allow_browser_origins(self) -> None:
        """Browsers upload straight to presigned URLs (PUT or the POST form) and read variants from
        presigned GETs: without a CORS rule on the bucket their preflight fails. The MinIO SDK has no
        call for bucket CORS, so the request is sent through its signed transport."""
        body = cors_configuration(self.cors_origins)
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}  # noqa: S324 - S3 demands it
        try:
            await self._call(self._client._execute, "PUT", self.bucket, body=body, headers=headers,
                             query_params={"cors": ""})  # fmt: skip
        except S3Error as exc:  # a store without bucket CORS: browser uploads need a proxy that adds it
            log.warning("could not set the bucket's CORS rule; browser uploads will fail", extra={"error": exc.code})

    async def close(self) -> None:
        return None


def cors_configuration(origins: tuple[str, ...]) -> bytes:
    """One rule: the origins may GET/HEAD objects and PUT/POST uploads with any header, and read
    the ETag (multipart uploads from a browser need it)."""
    rule = ET.Element("CORSRule")
    for origin in origins:
        ET.SubElement(rule, "AllowedOrigin").text = origin
    for method in ("GET", "HEAD", "PUT", "POST"):
        ET.SubElement(rule, "AllowedMethod").text = method
    ET.SubElement(rule, "AllowedHeader").text = "*"
    ET.SubElement(rule, "ExposeHeader").text = "ETag"
    ET.SubElement(rule, "MaxAgeSeconds").text = "3600"
    root = ET.Element("CORSConfiguration", xmlns="http://s3.amazonaws.com/doc/2006-03-01/")
    root.append(rule)
    return ET.tostring(root, xml_declaration=False)
