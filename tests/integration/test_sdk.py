"""The Python SDK (clients/python, import name pixelflow_client) against the real running service:
sync and async clients, typed errors, pagination, waiting, webhooks verified by its helper."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pixelflow_client import (
    AsyncClient,
    Client,
    Forbidden,
    JobFailed,
    NotFound,
    PixelFlowError,
    RateLimited,
    Unauthorized,
    Unprocessable,
    WebhookVerificationError,
    verify,
)

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant

pytestmark = pytest.mark.integration

SPEC = {
    "version": 1,
    "pipeline": [
        {"id": "large", "steps": [{"op": "resize", "width": 400, "fit": "inside"}], "format": "webp"},
        {"id": "thumb", "action": "resize", "width": 64, "height": 64, "format": "jpeg"},
    ],
}


async def test_sync_client_submit_list_and_webhook(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    path = f"/sdk/{tenant.name}"
    source = encode(photo(800, 600, seed=21), ".jpg")

    def run() -> None:
        with Client(api.url, tenant.key) as pf:
            job = pf.submit({**SPEC, "webhook_url": receiver.url(path)}, source, idempotency_key="sdk-1", timeout=60)
            assert job.status == "succeeded" and job.done
            assert {(v.id, v.width, v.height) for v in job.variants} == {("large", 400, 300), ("thumb", 64, 64)}
            assert pf.get(job.id).id == job.id
            again = pf.submit({**SPEC, "webhook_url": receiver.url(path)}, source, idempotency_key="sdk-1")
            assert again.id == job.id  # same key, same spec: the same job, not a second run

            for _ in range(3):
                extra = pf.create(SPEC)
                assert extra.status == "created" and extra.upload is not None
            seen = [j.id for j in pf.iter_jobs(page_size=2)]
            assert len(seen) == len(set(seen)) == 4 and seen[-1] == job.id  # newest first, every page

            (got,) = receiver.wait(path, 1)
            event = verify(tenant.secret, got.headers, got.body)
            assert event.type == "job.succeeded" and event.job_id == job.id and event.id == got.headers["webhook-id"]
            with pytest.raises(WebhookVerificationError):
                verify(tenant.secret, got.headers, got.body.replace(b"succeeded", b"failed"))
            with pytest.raises(WebhookVerificationError):
                verify(tenant.secret, got.headers, got.body, now=time.time() + 3600)

            (delivery,) = pf.deliveries(job.id)
            assert delivery.status == "delivered" and str(delivery.webhook_id) == event.id
            assert str(pf.redeliver(job.id).webhook_id) == event.id

    await asyncio.to_thread(run)


async def test_typed_errors_carry_the_problem(api: ApiServer, tenant: Tenant) -> None:
    bad = {"version": 1, "pipeline": [{"id": "x", "action": "resize", "width": 0, "format": "webp"}]}
    async with AsyncClient(api.url, tenant.key) as pf:
        with pytest.raises(Unprocessable) as err:
            await pf.create(bad)
        assert err.value.status == 422 and err.value.code == "invalid_spec"
        assert any(e["path"].startswith("$.pipeline[0]") for e in err.value.errors)
        with pytest.raises(NotFound):
            await pf.get("00000000-0000-0000-0000-000000000000")
        check = await pf.validate(SPEC, width=1600, height=1200)
        assert check.valid and check.cost is not None
    async with AsyncClient(api.url, "pf_not-a-key") as anon:
        with pytest.raises(Unauthorized):
            await anon.list()


async def test_async_client_failed_job_and_cancel(api: ApiServer, tenant: Tenant, worker: WorkerProcess) -> None:
    broken = {
        "version": 1,
        "pipeline": [{"id": "c", "action": "crop", "left": 5000, "top": 0, "width": 8, "height": 8}],
    }
    async with AsyncClient(api.url, tenant.key) as pf:
        with pytest.raises(JobFailed) as failed:
            await pf.submit(broken, encode(photo(320, 240), ".jpg"), timeout=60)
        assert failed.value.job.status == "failed" and failed.value.job.error.code == "invalid_operation"
        job = await pf.create(SPEC)
        assert (await pf.cancel(job.id)).status == "canceled"
        assert [j.id async for j in pf.iter_jobs(status="canceled")] == [job.id]


async def test_rate_limited_calls_wait_for_retry_after(stack: Stack) -> None:
    """One creation a second, burst 1: a second create with an idempotency key (safe to resend)
    waits for the server's Retry-After and succeeds; without retries it surfaces RateLimited."""
    limited = ApiServer(stack.settings(rate_limit_per_minute=60, rate_limit_burst=1), free_port()).start()
    try:
        t = await make_tenant(stack, limited)
        async with AsyncClient(limited.url, t.key) as pf:
            await pf.create(SPEC, idempotency_key="a")
            started = time.monotonic()
            second = await pf.create(SPEC, idempotency_key="b")
            assert second.status == "created" and time.monotonic() - started >= 0.5
        async with AsyncClient(limited.url, t.key, max_retries=0) as impatient:
            with pytest.raises(RateLimited) as err:
                await impatient.create(SPEC, idempotency_key="c")
            assert err.value.status == 429 and err.value.retry_after is not None and err.value.retry_after >= 1
        await t.http.aclose()
    finally:
        limited.stop()


async def test_download_streams_a_variant_to_a_file_and_leaves_nothing_on_failure(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    source = encode(photo(640, 480, seed=5), ".jpg")
    async with AsyncClient(api.url, tenant.key) as pf:
        job = await pf.submit(SPEC, source, timeout=60)
        large = next(v for v in job.variants if v.id == "large")
        saved = await pf.download(large, tmp_path / "large.webp")
        assert saved.read_bytes()[8:12] == b"WEBP" and saved.stat().st_size == large.bytes
        tampered = large.url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        with pytest.raises(PixelFlowError) as err:
            await pf.download(tampered, tmp_path / "bad.webp")
        assert err.value.status == 403
        assert sorted(p.name for p in tmp_path.iterdir()) == ["large.webp"]  # no partial file

    def sync() -> None:
        with Client(api.url, tenant.key) as pf:
            thumb = next(v for v in pf.get(job.id).variants if v.id == "thumb")
            assert pf.download(thumb.url, tmp_path / "t.jpg").read_bytes()[:2] == b"\xff\xd8"

    await asyncio.to_thread(sync)


async def test_templates_through_the_clients(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    from tests.integration.test_templates import product, scoped_key

    template = product(200)
    with Client(api.url, tenant.key) as pf:
        assert pf.limits()["max_job_cost"] > 0
        first = pf.save_template("product", template["spec"], template["parameters"])
        assert first.version == 1
        assert pf.save_template("product", template["spec"], template["parameters"]).version == 1  # unchanged
        job = pf.create({"template": "product@1", "parameters": {"caption": "Hi"}})
        assert job.template is not None and (job.template.name, job.template.version) == ("product", 1)
        assert pf.validate({"template": "product"}, width=1600, height=1200).template.version == 1  # type: ignore[union-attr]
    async with AsyncClient(api.url, tenant.key) as apf:
        template["spec"]["pipeline"][0]["steps"][0]["width"] = 300
        assert (await apf.save_template("product", template["spec"], template["parameters"])).version == 2
        assert await apf.list_templates() == {"product": 2}
        assert [v.version for v in (await apf.get_template("product")).versions] == [2, 1]
        diff = await apf.diff_template("product")
        assert [(c.op, c.path, c.before, c.after) for c in diff.changes] == [
            ("replace", "$.spec.pipeline[0].steps[0].width", 200, 300)
        ]
        assert (await apf.validate({"template": "product@1"})).newer_template.to_version == 2  # type: ignore[union-attr]
        assert (await apf.limits())["overridden"] == []
    async with scoped_key(stack, api, tenant, presets_only=True) as http:
        key = http.headers["Authorization"].removeprefix("Bearer ")
        async with AsyncClient(api.url, key) as limited:
            with pytest.raises(Forbidden) as err:
                await limited.create(SPEC)
            assert (err.value.status, err.value.code) == (403, "presets_only")
