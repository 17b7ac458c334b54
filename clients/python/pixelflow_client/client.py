"""Sync and async clients with the same methods. Waiting honours ``Retry-After`` on 429/503."""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pixelflow_client._calls import Call, backoff, calls, check, parse
from pixelflow_client.errors import JobFailed, RateLimited, Unavailable
from pixelflow_client.models import (
    Delivery,
    Job,
    JobPage,
    Template,
    TemplateDiff,
    TemplateVersion,
    Upload,
    Usage,
    Validation,
    Variant,
)

__all__ = ["AsyncClient", "Client"]

JobId = uuid.UUID | str
T = TypeVar("T")
_RETRYABLE = (RateLimited, Unavailable)


def _bytes(file: bytes | str | Path) -> bytes:
    return file if isinstance(file, bytes) else Path(file).read_bytes()


def _required(file: bytes | str | Path | None) -> bytes | str | Path:
    if file is None:
        raise ValueError("this job waits for an upload: pass the original, or give the spec a source")
    return file


def _url(variant_or_url: Variant | str) -> str:
    if isinstance(variant_or_url, str):
        return variant_or_url
    if variant_or_url.url is None:
        raise ValueError(f"variant {variant_or_url.id!r} was deleted by the retention policy")
    return variant_or_url.url


def _partial(dest: Path) -> Path:
    # Written beside its destination and renamed once complete: a failed download leaves no half file.
    return dest.with_name(f".{dest.name}.part")


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "pixelflow-client/0.1"}


class Client:
    """``Client("http://127.0.0.1:8000", api_key)``; also a context manager."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float | httpx.Timeout = 30.0, max_retries: int = 4
    ) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout)
        self._storage = httpx.Client(timeout=timeout)  # presigned URLs: never send the API key there
        self.max_retries = max_retries

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    def _send(self, call: Call[T]) -> T:
        for attempt in range(self.max_retries + 1):
            response = self._http.request(
                call.method, call.path, json=call.json, params=call.params, headers=call.headers
            )
            try:
                return parse(call, response)
            except _RETRYABLE as exc:
                if not call.retry or attempt == self.max_retries:
                    raise
                time.sleep(exc.retry_after if exc.retry_after is not None else backoff(attempt))
        raise AssertionError("unreachable")

    def create(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        return self._send(calls.create(spec, idempotency_key))

    def upload(
        self, job_or_upload: Job | Upload, file: bytes | str | Path, *, content_type: str = "application/octet-stream"
    ) -> None:
        upload = job_or_upload.upload if isinstance(job_or_upload, Job) else job_or_upload
        if upload is None:
            raise ValueError("this job takes no upload (it has started already)")
        check(self._storage.put(upload.put.url, content=_bytes(file), headers={"Content-Type": content_type}))

    def start(self, job_id: JobId) -> Job:
        return self._send(calls.start(job_id))

    def get(self, job_id: JobId) -> Job:
        return self._send(calls.get(job_id))

    def wait(self, job_id: JobId, *, timeout: float | None = None, poll: float = 0.25) -> Job:
        """Poll until the job ends (backing off to 5 s between polls); returns its final state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(backoff(attempt, base=poll))
            attempt += 1

    def submit(
        self,
        spec: dict[str, Any],
        file: bytes | str | Path | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        raise_on_failure: bool = True,
    ) -> Job:
        """Create, upload, start and wait, in one call. ``JobFailed`` if it does not succeed.
        A spec with a ``source`` (``{"url": ...}`` or ``{"job": id}``) takes no ``file``."""
        job = self.create(spec, idempotency_key=idempotency_key)
        if job.status == "created":
            if job.upload is not None:
                self.upload(job, _required(file))
            self.start(job.id)
        final = self.wait(job.id, timeout=timeout)
        if raise_on_failure and final.status != "succeeded":
            raise JobFailed(final)
        return final

    def download(self, variant: Variant | str, dest: str | Path) -> Path:
        """Save a variant (or any download URL the API gave) to ``dest``, streamed; the API key is not sent."""
        dest = Path(dest)
        part = _partial(dest)
        try:
            with self._storage.stream("GET", _url(variant)) as response:
                if response.status_code >= 400:
                    response.read()
                    check(response)
                with part.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    def list(self, *, status: str | None = None, limit: int = 50, cursor: str | None = None) -> JobPage:
        return self._send(calls.list(status, limit, cursor))

    def iter_jobs(self, *, status: str | None = None, page_size: int = 50) -> Iterator[Job]:
        """Every job, newest first, across pages."""
        cursor = None
        while True:
            page = self.list(status=status, limit=page_size, cursor=cursor)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: JobId) -> Job:
        return self._send(calls.cancel(job_id))

    def deliveries(self, job_id: JobId) -> builtins.list[Delivery]:  # `list` here is the method above
        return self._send(calls.deliveries(job_id))

    def redeliver(self, job_id: JobId) -> Delivery:
        return self._send(calls.redeliver(job_id))

    def upload_asset(self, key: str, file: bytes | str | Path, *, content_type: str = "image/png") -> str:
        """Store a watermark image under ``key``; specs then name it (``"image": key``)."""
        asset = self._send(calls.asset(key))
        self.upload(asset.upload, file, content_type=content_type)
        return asset.key

    def validate(self, spec: dict[str, Any], *, width: int | None = None, height: int | None = None) -> Validation:
        source = {"width": width, "height": height} if width and height else None
        return self._send(calls.validate(spec, source))

    def save_template(
        self, name: str, spec: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> TemplateVersion:
        """Save a template's next version (or get the latest, unchanged, when it says the same).
        A job then names it: ``create({"template": "name"})`` or ``{"template": "name@2"}``."""
        return self._send(calls.save_template(name, spec, parameters))

    def limits(self) -> dict[str, Any]:
        """Your client's limits in force, and which the operator set for it (``overridden``)."""
        return self._send(calls.limits())

    def usage(self, start: date | str | None = None, end: date | str | None = None) -> Usage:
        """Your client's usage from ``start`` to ``end`` (UTC days, both included; default: the
        last 30 days, at most 366)."""
        return self._send(calls.usage(start, end))

    def get_template(self, name: str) -> Template:
        return self._send(calls.template(name))

    def diff_template(self, name: str, from_version: int | None = None, to_version: int | None = None) -> TemplateDiff:
        """What changed between two versions (default: the latest and the one before it)."""
        return self._send(calls.template_diff(name, from_version, to_version))

    def list_templates(self) -> dict[str, int]:
        """Each template's name and latest version."""
        return {t.name: t.latest_version for t in self._send(calls.templates()).templates}


class AsyncClient:
    """The same methods as ``Client``, awaitable; ``iter_jobs`` is an async iterator."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float | httpx.Timeout = 30.0, max_retries: int = 4
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout)
        self._storage = httpx.AsyncClient(timeout=timeout)
        self.max_retries = max_retries

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._storage.aclose()

    async def _send(self, call: Call[T]) -> T:
        for attempt in range(self.max_retries + 1):
            response = await self._http.request(
                call.method, call.path, json=call.json, params=call.params, headers=call.headers
            )
            try:
                return parse(call, response)
            except _RETRYABLE as exc:
                if not call.retry or attempt == self.max_retries:
                    raise
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None else backoff(attempt))
        raise AssertionError("unreachable")

    async def create(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        return await self._send(calls.create(spec, idempotency_key))

    async def upload(
        self, job_or_upload: Job | Upload, file: bytes | str | Path, *, content_type: str = "application/octet-stream"
    ) -> None:
        upload = job_or_upload.upload if isinstance(job_or_upload, Job) else job_or_upload
        if upload is None:
            raise ValueError("this job takes no upload (it has started already)")
        check(await self._storage.put(upload.put.url, content=_bytes(file), headers={"Content-Type": content_type}))

    async def start(self, job_id: JobId) -> Job:
        return await self._send(calls.start(job_id))

    async def get(self, job_id: JobId) -> Job:
        return await self._send(calls.get(job_id))

    async def wait(self, job_id: JobId, *, timeout: float | None = None, poll: float = 0.25) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            job = await self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            await asyncio.sleep(backoff(attempt, base=poll))
            attempt += 1

    async def submit(
        self,
        spec: dict[str, Any],
        file: bytes | str | Path | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        raise_on_failure: bool = True,
    ) -> Job:
        job = await self.create(spec, idempotency_key=idempotency_key)
        if job.status == "created":
            if job.upload is not None:
                await self.upload(job, _required(file))
            await self.start(job.id)
        final = await self.wait(job.id, timeout=timeout)
        if raise_on_failure and final.status != "succeeded":
            raise JobFailed(final)
        return final

    async def download(self, variant: Variant | str, dest: str | Path) -> Path:
        dest = Path(dest)
        part = _partial(dest)
        try:
            async with self._storage.stream("GET", _url(variant)) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check(response)
                with part.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    async def list(self, *, status: str | None = None, limit: int = 50, cursor: str | None = None) -> JobPage:
        return await self._send(calls.list(status, limit, cursor))

    async def iter_jobs(self, *, status: str | None = None, page_size: int = 50) -> AsyncIterator[Job]:
        cursor = None
        while True:
            page = await self.list(status=status, limit=page_size, cursor=cursor)
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: JobId) -> Job:
        return await self._send(calls.cancel(job_id))

    async def deliveries(self, job_id: JobId) -> builtins.list[Delivery]:  # `list` here is the method above
        return await self._send(calls.deliveries(job_id))

    async def redeliver(self, job_id: JobId) -> Delivery:
        return await self._send(calls.redeliver(job_id))

    async def upload_asset(self, key: str, file: bytes | str | Path, *, content_type: str = "image/png") -> str:
        asset = await self._send(calls.asset(key))
        await self.upload(asset.upload, file, content_type=content_type)
        return asset.key

    async def validate(
        self, spec: dict[str, Any], *, width: int | None = None, height: int | None = None
    ) -> Validation:
        source = {"width": width, "height": height} if width and height else None
        return await self._send(calls.validate(spec, source))

    async def save_template(
        self, name: str, spec: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> TemplateVersion:
        return await self._send(calls.save_template(name, spec, parameters))

    async def limits(self) -> dict[str, Any]:
        return await self._send(calls.limits())

    async def usage(self, start: date | str | None = None, end: date | str | None = None) -> Usage:
        return await self._send(calls.usage(start, end))

    async def get_template(self, name: str) -> Template:
        return await self._send(calls.template(name))

    async def diff_template(
        self, name: str, from_version: int | None = None, to_version: int | None = None
    ) -> TemplateDiff:
        return await self._send(calls.template_diff(name, from_version, to_version))

    async def list_templates(self) -> dict[str, int]:
        return {t.name: t.latest_version for t in (await self._send(calls.templates())).templates}
