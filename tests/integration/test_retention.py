"""Stored-data lifecycle on real services. Retention: the sweeper deletes exactly the expired originals and variants
(listed from the bucket), under the global retention or a client's own, leaves running jobs
alone, rides out a store outage (nothing recorded until the objects are gone, retried next tick),
and the job shows when its objects expire and, after the sweep, that they were deleted. Time is
moved by backdating `finished_at`, the moment retention counts from. Output key templates: a
client's variants are stored (listed from the bucket) where its template says, found again by
DELETE, and templates that could escape `outputs/` or collide are refused."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from infra.db import open_pool
from infra.repo._sql import execute
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.storeproxy import StoreProxy
from tests.integration.test_cli_admin import cli_json, refused
from tests.integration.test_flow import create_and_upload, spec
from tests.integration.test_job_deletion import s3, stored

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
GLOBAL = {"retain_originals_days": "2", "retain_outputs_days": "10"}


@contextlib.asynccontextmanager
async def retention_stack(
    stack: Stack, *, s3_endpoint: str | None = None
) -> AsyncIterator[tuple[ApiServer, list[WorkerProcess]]]:
    """An API and a worker on a queue of their own, with the global retention above; the worker
    may reach S3 through a proxy."""
    settings: dict[str, str] = {"queue_name": f"pixelflow:retention-{uuid.uuid4().hex[:6]}", **GLOBAL}
    api = ApiServer(stack.settings(**settings), free_port()).start()
    settings["worker_metrics_port"] = str(free_port())
    if s3_endpoint:
        settings["s3_endpoint"] = s3_endpoint
    env = {**stack.env, **{f"PIXELFLOW_{k.upper()}": v for k, v in settings.items()}}
    workers = [WorkerProcess(env, stack.workdir / f"retention-{settings['queue_name'][-6:]}.log").start()]
    try:
        yield api, workers
    except BaseException:
        print("\n".join(workers[0].log.read_text(errors="replace").splitlines()[-40:]))
        raise
    finally:
        for w in workers:
            w.stop()
        api.stop()


async def finished_job(t: Tenant, seed: int) -> dict[str, Any]:
    job = await create_and_upload(t, spec(), encode(photo(320, 240, seed=seed), ".jpg"))
    assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    done = await wait_status(t, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    return done


async def sql(stack: Stack, query: str, *params: object) -> None:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        await execute(pool, query, params)
    finally:
        await pool.close()


async def age(stack: Stack, job_id: str, days: float) -> None:
    """Make the job look as if it ended ``days`` ago."""
    await sql(
        stack, "UPDATE jobs SET finished_at = now() - make_interval(secs => %s) WHERE id = %s", days * 86400, job_id
    )


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def until(t: Tenant, job_id: str, field: str, timeout: float = 30) -> dict[str, Any]:
    for _ in range(int(timeout / 0.2)):
        job = (await t.http.get(f"/v1/jobs/{job_id}")).json()
        if job[field] is not None:
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"{field} stayed null for {job_id}")


def objects(stack: Stack, t: Tenant, job_id: str) -> dict[str, list[str]]:
    found = stored(stack, t.client_id, job_id)
    return {kind: [k for k in found if k.startswith(f"{kind}/")] for kind in ("uploads", "sources", "outputs")}


async def test_the_sweeper_deletes_exactly_what_expired_globally_and_per_client(stack: Stack) -> None:
    async with retention_stack(stack) as (api, _workers):
        plain, short = await make_tenant(stack, api), await make_tenant(stack, api)
        running: dict[str, Any] | None = None  # set back to ended afterwards, if the test got that far
        try:
            cli_json(
                stack, "clients", "limits", short.name, "--retain-originals-days", "1", "--retain-outputs-days", "1"
            )
            limits = (await short.http.get("/v1/limits")).json()
            assert (limits["retain_originals_days"], limits["retain_outputs_days"]) == (1, 1)
            assert {"retain_originals_days", "retain_outputs_days"} <= set(limits["overridden"])
            assert (await plain.http.get("/v1/limits")).json()["retain_outputs_days"] == 10  # the global value

            kept, swept, running = (
                await finished_job(plain, 1),
                await finished_job(short, 2),
                await finished_job(short, 3),
            )
            waiting = await create_and_upload(short, spec(), encode(photo(64, 48, seed=4), ".jpg"))  # never started

            # before: the job says when each expires, counted from when it ended
            for job, days in ((kept, (2, 10)), (swept, (1, 1))):
                end = at(job["finished_at"])
                assert end is not None
                assert at(job["original_expires_at"]) == end + timedelta(days=days[0])
                assert at(job["outputs_expire_at"]) == end + timedelta(days=days[1])
                assert (job["original_deleted_at"], job["outputs_deleted_at"]) == (None, None)
                assert all(v["url"] for v in job["variants"])
            assert waiting["original_expires_at"] is None and waiting["outputs_expire_at"] is None  # not ended

            # what is stored before any job is past its retention (the sweeper runs every tick)
            before = {j["id"]: objects(stack, t, j["id"]) for t, j in ((plain, kept), (short, swept), (short, running))}
            assert all(len(o["sources"]) == 1 and len(o["outputs"]) == 3 for o in before.values())

            # a job still running is never swept, however old it looks
            await sql(
                stack,
                "UPDATE jobs SET status = 'processing', lease_expires_at = now() + interval '1 hour' WHERE id = %s",
                running["id"],
            )
            await sql(stack, "UPDATE jobs SET created_at = now() - interval '30 days' WHERE id = %s", waiting["id"])
            await age(stack, running["id"], 30)
            await age(stack, kept["id"], 3)  # past the global 2 days for originals, within 10 for outputs
            await age(stack, swept["id"], 1.01)  # past the client's 1 day for both

            done = await until(short, swept["id"], "outputs_deleted_at")
            assert done["original_deleted_at"] and done["status"] == "succeeded"
            assert [v["url"] for v in done["variants"]] == [None] * 3  # sizes and formats stay
            assert [v["bytes"] for v in done["variants"]] == [v["bytes"] for v in swept["variants"]]
            assert objects(stack, short, swept["id"]) == {"uploads": [], "sources": [], "outputs": []}
            gone = await short.http.get(f"/v1/jobs/{swept['id']}/variants/large")
            assert gone.status_code == 410 and gone.headers["content-type"].startswith(PROBLEM), gone.text
            assert gone.json()["code"] == "outputs_expired"

            half = await until(plain, kept["id"], "original_deleted_at")
            assert half["outputs_deleted_at"] is None and all(v["url"] for v in half["variants"])
            assert objects(stack, plain, kept["id"]) == {
                "uploads": [],
                "sources": [],
                "outputs": before[kept["id"]]["outputs"],
            }
            assert (await plain.http.get(f"/v1/jobs/{kept['id']}/variants/large")).status_code == 302

            await asyncio.sleep(3)  # several more ticks: idempotent, and the running and waiting jobs stay whole
            assert objects(stack, short, running["id"]) == before[running["id"]]
            assert objects(stack, short, waiting["id"])["uploads"] == [f"uploads/{short.client_id}/{waiting['id']}"]
            again = (await short.http.get(f"/v1/jobs/{swept['id']}")).json()
            assert again["outputs_deleted_at"] == done["outputs_deleted_at"]

            metrics = httpx.get(f"http://127.0.0.1:{_workers[0].env['PIXELFLOW_WORKER_METRICS_PORT']}/metrics").text
            assert 'pixelflow_retention_deleted_total{what="outputs"} 1.0' in metrics
            assert 'pixelflow_retention_deleted_total{what="original"} 2.0' in metrics

            # the job can still be deleted (a tombstone), with nothing left to remove
            assert (await short.http.delete(f"/v1/jobs/{swept['id']}")).status_code == 204
        finally:
            if running is not None:
                await sql(
                    stack, "UPDATE jobs SET status = 'succeeded', lease_expires_at = NULL WHERE id = %s", running["id"]
                )
            for t in (plain, short):
                await t.http.aclose()


async def test_the_sweeper_rides_out_a_store_outage(stack: Stack) -> None:
    proxy = StoreProxy(stack.s3.endpoint)
    try:
        async with retention_stack(stack, s3_endpoint=proxy.endpoint) as (api, workers):
            t = await make_tenant(stack, api)
            try:
                # the global retention, which only this test's worker (behind the proxy) applies
                job = await finished_job(t, 5)
                log = workers[0].log
                with proxy.outage():
                    await age(stack, job["id"], 11)  # past the global 10 days for outputs
                    for _ in range(120):  # a tick gives up once the store's retries are spent (~20 s)
                        if "retention sweep stopped" in log.read_text(errors="replace"):
                            break
                        await asyncio.sleep(0.5)
                    else:
                        raise AssertionError("the sweeper never gave up on the store")
                    during = (await t.http.get(f"/v1/jobs/{job['id']}")).json()  # nothing recorded
                    assert during["outputs_deleted_at"] is None and during["original_deleted_at"] is None
                    assert all(v["url"] for v in during["variants"])
                    assert during["status"] == "succeeded"
                done = await until(t, job["id"], "outputs_deleted_at", timeout=60)  # a later tick finishes it
                assert objects(stack, t, job["id"])["outputs"] == []
                assert done["original_deleted_at"]  # and the global 2 days for originals
                assert objects(stack, t, job["id"]) == {"uploads": [], "sources": [], "outputs": []}
            finally:
                await t.http.aclose()
    finally:
        proxy.close()


async def test_a_clients_output_key_template_places_its_variants(
    stack: Stack, api: ApiServer, worker: WorkerProcess
) -> None:
    t, other = await make_tenant(stack, api), await make_tenant(stack, api)
    try:
        shown = cli_json(
            stack, "clients", "limits", t.name, "--output-key-template", "by-variant/{variant}/{job}.{ext}"
        )
        assert shown["output_key_template"] == "by-variant/{variant}/{job}.{ext}"
        assert "output_key_template" in shown["overridden"]
        assert (await t.http.get("/v1/limits")).json()["output_key_template"] == shown["output_key_template"]
        job, theirs = await finished_job(t, 6), await finished_job(other, 7)
        bucket = stack.env["PIXELFLOW_S3_BUCKET"]
        listed = sorted(o.object_name for o in s3(stack).list_objects(bucket, prefix="outputs/", recursive=True))
        mine = sorted(k for k in listed if job["id"] in k)
        assert mine == sorted(
            f"outputs/by-variant/{v}/{job['id']}.{ext}"
            for v, ext in (("large", "webp"), ("thumb", "jpg"), ("gray", "png"))
        )
        # the other client keeps the default layout
        assert sorted(k for k in listed if theirs["id"] in k) == sorted(
            f"outputs/{other.client_id}/{theirs['id']}/{v['id']}.{v['format'].replace('jpeg', 'jpg')}"
            for v in theirs["variants"]
        )
        got = await t.http.get(f"/v1/jobs/{job['id']}/variants/thumb")
        assert got.status_code == 302 and f"/outputs/by-variant/thumb/{job['id']}.jpg" in got.headers["location"]
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(got.headers["location"])).content[:2] == b"\xff\xd8"
        # deleting the job finds its objects where the template put them, even after the template changed
        cli_json(stack, "clients", "limits", t.name, "--output-key-template", "")  # '' puts the global one back
        assert (await t.http.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        listed = [o.object_name for o in s3(stack).list_objects(bucket, prefix="outputs/", recursive=True)]
        assert [k for k in listed if job["id"] in k] == []
    finally:
        for tenant in (t, other):
            await tenant.http.aclose()


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{client}/{variant}.{ext}", "must contain {job}"),
        ("{job}.{ext}", "must contain {variant}"),
        ("{job}/../{variant}", "no '..'"),
        ("/{job}/{variant}", "leading or trailing"),
        ("{job}//{variant}", "empty"),
        ("{job}/{variant}/", "leading or trailing"),
        ("{job}/{variant} copy", "only letters"),
        ("{job}/{variant}?x=1", "only letters"),
        ("{job}/{name}/{variant}", "unknown placeholder {name}"),
        ("{job!r}/{variant}", "unknown placeholder"),
        ("{job:>40}/{variant}", "unknown placeholder"),
        ("{job}/{variant", "output key template"),
    ],
)
def test_invalid_output_key_templates_are_refused(stack: Stack, template: str, why: str) -> None:
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    cli_json(stack, "clients", "create", name)
    message = refused(stack, "clients", "limits", name, "--output-key-template", template)
    assert why in message, message
    assert cli_json(stack, "clients", "limits", name)["output_key_template"] == "{client}/{job}/{variant}.{ext}"
