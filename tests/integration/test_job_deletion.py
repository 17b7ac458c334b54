"""Deleting a job on real services: every object it stored is gone from the bucket (listed from
S3, not taken from the API's word), its spec, metadata and webhook deliveries are gone from the
database, and a tombstone stays for audit; during a store outage it is 503 and nothing is lost."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from minio import Minio

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from infra.db import open_pool
from infra.repo._sql import fetch_all, fetch_one
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.storeproxy import StoreProxy
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def s3(stack: Stack) -> Minio:
    return Minio(stack.s3.endpoint, access_key=stack.s3.access_key, secret_key=stack.s3.secret_key, secure=False)


def stored(stack: Stack, client_id: uuid.UUID, job_id: str) -> list[str]:
    """Every object in the bucket that belongs to the job, whatever its prefix."""
    objects = s3(stack).list_objects(stack.env["PIXELFLOW_S3_BUCKET"], recursive=True)
    return sorted(o.object_name for o in objects if f"{client_id}/{job_id}" in o.object_name)


async def test_delete_removes_every_object_and_keeps_a_tombstone(
    stack: Stack, api: ApiServer, tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    hook = f"/delete/{tenant.name}"
    body = spec(receiver.url(hook), info={"gps": True})  # the described source goes with the rest
    job = await create_and_upload(tenant, body, encode(photo(800, 600, seed=8), ".jpg", Q=85))
    jid = job["id"]
    assert (await tenant.http.post(f"/v1/jobs/{jid}/start")).status_code == 202
    done = await wait_status(tenant, jid, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["info"]["width"] == 800
    receiver.wait(hook, 1, timeout=60)
    before = stored(stack, tenant.client_id, jid)
    assert before == sorted(
        [f"sources/{tenant.client_id}/{jid}"]
        + [f"outputs/{tenant.client_id}/{jid}/{v['id']}.{v['format'].replace('jpeg', 'jpg')}" for v in done["variants"]]
    )
    assert len(before) == 4  # the original and three variants

    # a stray object under the job's outputs (a run that wrote but never recorded) goes too
    stray = f"outputs/{tenant.client_id}/{jid}/unrecorded.webp"
    s3(stack).put_object(stack.env["PIXELFLOW_S3_BUCKET"], stray, io.BytesIO(b"x"), 1)
    assert stray in stored(stack, tenant.client_id, jid)

    other = await make_tenant(stack, api)  # another client cannot delete it
    try:
        r = await other.http.delete(f"/v1/jobs/{jid}")
        assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    finally:
        await other.http.aclose()
    assert len(stored(stack, tenant.client_id, jid)) == 5

    r = await tenant.http.delete(f"/v1/jobs/{jid}")
    assert r.status_code == 204, r.text
    assert stored(stack, tenant.client_id, jid) == []

    for method, path in [
        ("GET", f"/v1/jobs/{jid}"),
        ("DELETE", f"/v1/jobs/{jid}"),
        ("GET", f"/v1/jobs/{jid}/variants/large"),
    ]:
        r = await tenant.http.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
    assert jid not in (await tenant.http.get("/v1/jobs")).text

    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        row = await fetch_one(
            pool,
            "SELECT client_id, status, spec, idempotency_key, created_at, finished_at, deleted_at, source_info"
            " FROM jobs WHERE id = %s",
            (jid,),
        )
        deliveries = await fetch_all(pool, "SELECT id FROM webhook_deliveries WHERE job_id = %s", (jid,))
    finally:
        await pool.close()
    assert row is not None
    assert (row["client_id"], row["status"], row["spec"], row["source_info"]) == (
        tenant.client_id,
        "succeeded",
        {},
        None,
    )
    assert row["created_at"] and row["finished_at"] and row["deleted_at"] >= row["finished_at"]
    assert deliveries == []  # their payloads echoed the metadata


async def test_an_unfinished_job_must_be_canceled_first(stack: Stack, tenant: Tenant) -> None:
    job = await create_and_upload(tenant, spec(), encode(photo(64, 48, seed=9), ".jpg"))
    r = await tenant.http.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 409 and r.json()["code"] == "job_created", r.text
    assert stored(stack, tenant.client_id, job["id"]) == [f"uploads/{tenant.client_id}/{job['id']}"]
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
    assert (await tenant.http.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert stored(stack, tenant.client_id, job["id"]) == []


async def test_delete_during_a_storage_outage_is_503_and_loses_nothing(
    stack: Stack, api: ApiServer, tenant: Tenant, worker: WorkerProcess
) -> None:
    job = await create_and_upload(tenant, spec(), encode(photo(320, 240, seed=10), ".jpg"))
    jid = job["id"]
    assert (await tenant.http.post(f"/v1/jobs/{jid}/start")).status_code == 202
    done = await wait_status(tenant, jid, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    before = stored(stack, tenant.client_id, jid)
    assert len(before) == 4

    proxy = StoreProxy(stack.s3.endpoint)  # an API whose store goes away; the suite's keeps working
    cut_off = ApiServer(stack.settings(s3_endpoint=proxy.endpoint), free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=cut_off.url, headers=dict(tenant.http.headers), timeout=90) as http:
            with proxy.outage():
                r = await http.delete(f"/v1/jobs/{jid}")
            assert r.status_code == 503 and r.headers["content-type"].startswith(PROBLEM), r.text
            assert r.headers["retry-after"] and r.json()["code"] == "unavailable"
            # nothing changed: the job, its variants and every object are still there
            still = (await tenant.http.get(f"/v1/jobs/{jid}")).json()
            assert (still["status"], len(still["variants"])) == ("succeeded", 3)
            assert stored(stack, tenant.client_id, jid) == before
            # once the store is back, the same request finishes the job
            assert (await http.delete(f"/v1/jobs/{jid}")).status_code == 204
    finally:
        cut_off.stop()
        proxy.close()
    assert stored(stack, tenant.client_id, jid) == []
    assert (await tenant.http.get(f"/v1/jobs/{jid}")).status_code == 404
