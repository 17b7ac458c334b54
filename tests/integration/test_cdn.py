"""CDN-ready outputs on real services: each stored variant carries its content type and a
one-year immutable Cache-Control (read back from S3), and with PIXELFLOW_CDN_BASE_URL the job,
its variant redirect and its webhook carry stable CDN URLs instead of presigned ones."""

from __future__ import annotations

import json
import uuid

import pytest
from minio import Minio

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from infra.objects import OUTPUT_CACHE_CONTROL, output_key, source_key
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration

CONTENT_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}


def s3(stack: Stack) -> Minio:
    return Minio(stack.s3.endpoint, access_key=stack.s3.access_key, secret_key=stack.s3.secret_key, secure=False)


async def test_stored_variants_carry_cache_control_and_content_type(
    stack: Stack, tenant: Tenant, worker: WorkerProcess
) -> None:
    job = await create_and_upload(tenant, spec(), encode(photo(800, 600, seed=5), ".jpg", Q=85))
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    done = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    bucket = stack.env["PIXELFLOW_S3_BUCKET"]
    client = s3(stack)
    assert {v["format"] for v in done["variants"]} == set(CONTENT_TYPES)
    for v in done["variants"]:
        head = client.stat_object(bucket, output_key(tenant.client_id, uuid.UUID(job["id"]), v["id"], v["format"]))
        assert head.content_type == CONTENT_TYPES[v["format"]] == v["content_type"]
        assert head.metadata["Cache-Control"] == OUTPUT_CACHE_CONTROL == "public, max-age=31536000, immutable"
    # the original is not a public, immutable object
    original = client.stat_object(bucket, source_key(tenant.client_id, uuid.UUID(job["id"])))
    assert "Cache-Control" not in original.metadata


async def test_a_cdn_base_url_replaces_presigned_urls(stack: Stack, receiver: WebhookReceiver) -> None:
    base = "https://cdn.example.test/img"
    settings = {"queue_name": f"pixelflow:cdn-{uuid.uuid4().hex[:6]}", "cdn_base_url": base}
    env = {**stack.env, **{f"PIXELFLOW_{k.upper()}": v for k, v in settings.items()}}
    api = ApiServer(stack.settings(**settings), free_port()).start()
    worker = WorkerProcess(env, stack.workdir / "cdn-worker.log").start()
    try:
        t = await make_tenant(stack, api)
        hook = f"/cdn/{t.name}"
        job = await create_and_upload(t, spec(receiver.url(hook)), encode(photo(800, 600, seed=6), ".jpg", Q=85))
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        done = await wait_status(t, job["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        expected = {
            v["id"]: f"{base}/{output_key(t.client_id, uuid.UUID(job['id']), v['id'], v['format'])}"
            for v in done["variants"]
        }
        assert {v["id"]: v["url"] for v in done["variants"]} == expected  # stable: no signature, no expiry
        again = (await t.http.get(f"/v1/jobs/{job['id']}")).json()
        assert {v["id"]: v["url"] for v in again["variants"]} == expected
        redirect = await t.http.get(f"/v1/jobs/{job['id']}/variants/large")
        assert (redirect.status_code, redirect.headers["location"]) == (302, expected["large"])
        (delivery,) = receiver.wait(hook, 1, timeout=60)
        event = json.loads(delivery.body)
        assert {v["id"]: v["url"] for v in event["data"]["variants"]} == expected
        # uploads still go to presigned URLs: the CDN serves outputs only
        assert "X-Amz-Signature" in (await t.http.post("/v1/jobs", json=spec())).json()["upload"]["put"]["url"]
        await t.http.aclose()
    finally:
        worker.stop()
        api.stop()
