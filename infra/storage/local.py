"""A directory as object store, for a single machine. Presigned URLs point at the API's
``/v1/storage`` routes and carry an HMAC over method, key, expiry and size cap."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

from infra.storage.base import ObjectInfo, ObjectNotFound, PresignedUpload, cdn_url, require_within

__all__ = ["LocalStore", "UrlSigner"]


class UrlSigner:
    def __init__(self, secret: str, base_url: str) -> None:
        self._key = hashlib.sha256(b"pixelflow-local-storage:" + secret.encode()).digest()
        self.base_url = base_url.rstrip("/")

    def _mac(self, method: str, key: str, expires: int, max_bytes: int) -> str:
        msg = f"{method}\n{key}\n{expires}\n{max_bytes}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def sign(self, method: str, key: str, expires: timedelta, max_bytes: int = 0) -> tuple[str, datetime]:
        exp = int(time.time() + expires.total_seconds())
        query = urlencode({"expires": exp, "max": max_bytes, "sig": self._mac(method, key, exp, max_bytes)})
        return f"{self.base_url}/v1/storage/{quote(key)}?{query}", datetime.fromtimestamp(exp, UTC)

    def verify(self, method: str, key: str, expires: str, max_bytes: str, sig: str) -> bool:
        try:
            exp, cap = int(expires), int(max_bytes)
        except ValueError:
            return False
        return exp >= time.time() and hmac.compare_digest(self._mac(method, key, exp, cap), sig)


class LocalStore:
    def __init__(self, root: str | Path, signer: UrlSigner, cdn_base_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.signer = signer
        self.cdn_base_url = cdn_base_url

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ObjectNotFound(key)
        return path

    async def ensure_bucket(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")

    def presign_put(self, key: str, *, expires: timedelta, max_bytes: int) -> PresignedUpload:
        url, at = self.signer.sign("PUT", key, expires, max_bytes)
        return PresignedUpload("PUT", url, at)

    def presign_post(self, key: str, *, expires: timedelta, max_bytes: int) -> PresignedUpload | None:
        return None

    def presign_get(self, key: str, *, expires: timedelta) -> str:
        return self.signer.sign("GET", key, expires)[0]

    def public_url(self, key: str, *, expires: timedelta) -> str:
        return cdn_url(self.cdn_base_url, key) if self.cdn_base_url else self.presign_get(key, expires=expires)

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
            return ObjectInfo(size=st.st_size, content_type=None, version=f"{st.st_mtime_ns:x}-{st.st_size:x}")
        except FileNotFoundError:
            return None

    async def read(self, key: str, *, max_bytes: int) -> bytes:
        require_within(await self.stat(key), key, max_bytes)
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def read_head(self, key: str, length: int) -> bytes:
        def head() -> bytes:
            with self._path(key).open("rb") as f:
                return f.read(length)

        try:
            return await asyncio.to_thread(head)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def write(self, key: str, data: bytes, content_type: str, *, cache_control: str | None = None) -> None:
        # a file carries no headers: Cache-Control is for S3 and the CDN in front of it
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)  # readers never see a partial object

        await asyncio.to_thread(write)

    async def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise ObjectNotFound(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)

    async def copy(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise ObjectNotFound(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, source, target)

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> int:
        # a key is a path under the root, so a prefix PixelFlow deletes (one ending in "/") is a directory
        if not prefix.endswith("/"):
            raise ValueError(f"local storage deletes directory prefixes only, not {prefix!r}")
        directory = self._path(prefix.rstrip("/"))
        found = [p for p in directory.rglob("*") if p.is_file()] if directory.is_dir() else []
        for path in found:
            path.unlink(missing_ok=True)
        return len(found)

    async def close(self) -> None:
        return None
