"""Issue #10 item 1: a presigned upload URL is a write capability in the client's hands. A PUT
cannot carry a size limit in S3's presigned form, and a URL cannot be revoked before it expires,
so what it writes must be harmless: the upload lands under ``uploads/`` (expired by a bucket
lifecycle rule), ``/start`` checks it and moves it to the job's source key, and sources of jobs
that failed or were canceled are deleted."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from devstack.imagegen import encode, photo
from infra.objects import source_key, upload_key
from infra.storage import open_store
from tests.integration.conftest import Stack, Tenant, WorkerProcess, wait_status
from tests.security.conftest import record
from tests.timing import SLACK

QUICK = {"version": 1, "pipeline": [{"id": "t", "action": "resize", "width": 64, "format": "jpeg"}]}


async def _put(url: str, data: bytes) -> int:
    async with httpx.AsyncClient() as plain:
        return (await plain.put(url, content=data, headers={"Content-Type": "image/jpeg"})).status_code


async def test_an_upload_url_cannot_replace_a_started_jobs_source(
    stack: Stack, tenant: Tenant, worker: WorkerProcess
) -> None:
    store = open_store(stack.settings())
    original = encode(photo(320, 240, seed=1), ".jpg")
    job = (await tenant.http.post("/v1/jobs", json=QUICK)).json()
    url = job["upload"]["put"]["url"]
    assert await _put(url, original) == 200
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    done = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded"
    # the same URL, an hour's capability, used again after the job started
    assert await _put(url, encode(photo(640, 480, seed=2), ".jpg")) == 200
    src = source_key(tenant.client_id, uuid.UUID(job["id"]))
    assert await store.read(src, max_bytes=10**7) == original, "the started job's source was replaced"
    assert await store.stat(upload_key(tenant.client_id, uuid.UUID(job["id"]))) is not None  # harmless, expiring
    await store.close()


async def test_uploads_expire_by_a_bucket_lifecycle_rule(stack: Stack) -> None:
    from infra.storage.s3 import S3Store

    store = open_store(stack.settings())
    assert isinstance(store, S3Store)
    await store.ensure_bucket()
    rules = await store.lifecycle_rules()
    assert any(r.get("prefix") == "uploads/" and r.get("days") == 1 for r in rules), rules
    await store.close()


async def test_an_oversize_put_is_refused_at_start_and_deleted(stack: Stack, tenant: Tenant) -> None:
    store = open_store(stack.settings())
    limit = stack.settings().max_source_bytes
    job = (await tenant.http.post("/v1/jobs", json=QUICK)).json()
    assert await _put(job["upload"]["put"]["url"], b"\xff\xd8\xff" + bytes(limit + 1024)) == 200  # S3 takes it
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    record("oversize PUT then /start", r.status_code)
    assert r.status_code == 413 and r.json()["code"] == "source_too_large"
    job_id = uuid.UUID(job["id"])
    assert await store.stat(upload_key(tenant.client_id, job_id)) is None
    assert await store.stat(source_key(tenant.client_id, job_id)) is None
    assert (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "failed"
    await store.close()


async def test_sources_of_failed_and_canceled_jobs_are_deleted(
    stack: Stack, tenant: Tenant, worker: WorkerProcess
) -> None:
    store = open_store(stack.settings())
    good = encode(photo(320, 240, seed=3), ".jpg")

    canceled = (await tenant.http.post("/v1/jobs", json=QUICK)).json()
    assert await _put(canceled["upload"]["put"]["url"], good) == 200
    assert (await tenant.http.post(f"/v1/jobs/{canceled['id']}/cancel")).json()["status"] == "canceled"

    broken = {
        "version": 1,
        "pipeline": [{"id": "c", "action": "crop", "left": 5000, "top": 0, "width": 10, "height": 10}],
    }
    failed = (await tenant.http.post("/v1/jobs", json=broken)).json()
    assert await _put(failed["upload"]["put"]["url"], good) == 200
    assert (await tenant.http.post(f"/v1/jobs/{failed['id']}/start")).status_code == 202
    assert (await wait_status(tenant, failed["id"], {"failed", "succeeded"}))["status"] == "failed"

    for job in (canceled, failed):
        job_id = uuid.UUID(job["id"])
        for key in (upload_key(tenant.client_id, job_id), source_key(tenant.client_id, job_id)):
            for _ in range(int(3 * SLACK / 0.1)):  # the worker deletes right after recording the failure
                if await store.stat(key) is None:
                    break
                await asyncio.sleep(0.1)
            assert await store.stat(key) is None, key
    await store.close()
