"""Usage metering on real services: every outcome counted once on the day the job ended, source
megapixels, output bytes equal to what storage holds, engine CPU, webhook attempts counted per
HTTP attempt (a failed one, its retry, a redelivery), exact after a worker SIGKILL; tenancy,
scopes and range checks of `GET /v1/usage`; `pixelflow clients usage`; and the daily quota of
source megapixels (global, per client, refused at /start with Retry-After, raced by jobs)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pixelflow_client import Client, QuotaExceeded

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from infra.objects import output_key
from infra.policy import quota_resets_in
from infra.storage import open_store
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_cli_admin import cli, cli_json, refused
from tests.integration.test_cli_remote import env_for, pixelflow
from tests.integration.test_flow import create_and_upload, spec
from tests.integration.test_resilience import HEAVY
from tests.timing import SLACK

pytestmark = pytest.mark.integration

NOTHING = {"jobs": 0, "succeeded": 0, "failed": 0, "canceled": 0, "failed_by_code": {}, "deadline_exceeded": 0,
           "deadline_exceeded_cpu_seconds": 0.0, "source_megapixels": 0.0, "output_bytes": {},
           "output_bytes_total": 0, "engine_cpu_seconds": 0.0, "webhook_attempts": 0, "webhooks_delivered": 0,
           "url_renders": 0, "url_render_cpu_seconds": 0.0, "url_render_source_megapixels": 0.0, "url_cache_hits": 0,
           "url_bytes_served": 0}  # fmt: skip


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def usage(t: Tenant, **params: str) -> dict[str, Any]:
    r = await t.http.get("/v1/usage", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def caught_up(t: Tenant, **total: int) -> dict[str, Any]:
    """The usage report once its total has these counts: a worker records a webhook attempt just
    after the receiver answers it, so a test that saw the delivery polls for the record. The
    bound only stops a hung test; the caller's assertions say what differs."""
    for _ in range(int(3 * SLACK / 0.1)):
        report = await usage(t)
        if all(report["total"][k] == v for k, v in total.items()):
            break
        await asyncio.sleep(0.1)
    return report


async def stored_bytes(stack: Stack, client_id: uuid.UUID, job: dict[str, Any]) -> dict[str, int]:
    """What storage holds for a job's variants, per format."""
    store = open_store(stack.settings())
    try:
        out: dict[str, int] = {}
        for v in job["variants"]:
            info = await store.stat(output_key(client_id, uuid.UUID(job["id"]), v["id"], v["format"]))
            assert info is not None and info.size == v["bytes"]
            out[v["format"]] = out.get(v["format"], 0) + info.size
        return out
    finally:
        await store.close()


async def test_each_outcome_once_with_bytes_cpu_and_webhook_attempts(
    stack: Stack, api: ApiServer, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    t, other = await make_tenant(stack, api), await make_tenant(stack, api)
    path = f"/usage/{t.name}"
    receiver.respond(path, 500)  # the first attempt fails, the quick retry is delivered
    source = encode(photo(1600, 1200, seed=21), ".jpg", Q=85)
    ok = await create_and_upload(t, spec(receiver.url(path)), source)
    assert (await t.http.post(f"/v1/jobs/{ok['id']}/start")).status_code == 202
    bad = await create_and_upload(t, spec(), b"not an image, only words " * 40)
    assert (await t.http.post(f"/v1/jobs/{bad['id']}/start")).status_code == 415  # fails at /start
    canceled = (await t.http.post("/v1/jobs", json=spec())).json()
    assert (await t.http.post(f"/v1/jobs/{canceled['id']}/cancel")).status_code == 200
    again = await t.http.post(f"/v1/jobs/{canceled['id']}/cancel")  # refused, and not counted again
    assert (again.status_code, again.json()["code"]) == (409, "job_canceled")
    done = await wait_status(t, ok["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    receiver.wait(path, 2, timeout=20)
    report = await caught_up(t, webhook_attempts=2, webhooks_delivered=1)

    by_format = await stored_bytes(stack, t.client_id, done)
    assert set(by_format) == {"webp", "jpeg", "png"}
    assert (report["from"], report["to"]) == ((date.fromisoformat(today()) - timedelta(days=29)).isoformat(), today())
    (day,) = report["days"]
    assert day["day"] == today()
    expected = {"jobs": 3, "succeeded": 1, "failed": 1, "canceled": 1, "source_megapixels": 1.92,
                "failed_by_code": {"unsupported_format": 1}, "deadline_exceeded": 0,
                "output_bytes": by_format, "output_bytes_total": sum(by_format.values()), "webhook_attempts": 2,
                "webhooks_delivered": 1}  # fmt: skip
    assert {k: day[k] for k in expected} == expected
    assert 0 < day["engine_cpu_seconds"] < 10
    assert {k: v for k, v in report["total"].items()} == {k: v for k, v in day.items() if k != "day"}

    # a redelivery is one more HTTP attempt; deleting the job keeps its usage (billing data)
    assert (await t.http.post(f"/v1/jobs/{ok['id']}/deliveries/redeliver")).status_code == 202
    receiver.wait(path, 3, timeout=20)
    await caught_up(t, webhook_attempts=3, webhooks_delivered=2)
    assert (await t.http.delete(f"/v1/jobs/{ok['id']}")).status_code == 204
    after = (await usage(t))["total"]
    assert (after["webhook_attempts"], after["webhooks_delivered"]) == (3, 2)
    assert {k: after[k] for k in expected if not k.startswith("webhook")} == {
        k: v for k, v in expected.items() if not k.startswith("webhook")
    }

    # the other client sees none of it; the admin CLI reports what the API does
    assert (await usage(other))["days"] == [] and (await usage(other))["total"] == NOTHING
    shown = cli_json(stack, "clients", "usage", t.name)
    assert shown == {"client": t.name, **(await usage(t))}
    text = cli(stack, "clients", "usage", t.name, "--from", today(), "--to", today())
    assert text.returncode == 0 and today() in text.stdout and "1.92" in text.stdout, text
    for t_ in (t, other):
        await t_.http.aclose()


async def test_usage_is_exact_after_a_worker_kill(stack: Stack, receiver: WebhookReceiver) -> None:
    """The run that died with its worker counts nothing; the run that ends the job counts it once."""
    queue = f"pixelflow:usage-kill-{uuid.uuid4().hex[:6]}"
    env = {**stack.env, "PIXELFLOW_QUEUE_NAME": queue}
    api = ApiServer(stack.settings(queue_name=queue), free_port()).start()
    first = WorkerProcess(env, stack.workdir / "usage-kill-1.log").start()
    second = WorkerProcess(env, stack.workdir / "usage-kill-2.log")
    try:
        t = await make_tenant(stack, api)
        path = f"/usage-kill/{t.name}"
        job = await create_and_upload(
            t, {**HEAVY, "webhook_url": receiver.url(path)}, encode(photo(2400, 1800, seed=5), ".jpg", Q=80)
        )
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        await wait_status(t, job["id"], {"processing"}, timeout=30)
        await asyncio.sleep(0.3)
        first.kill()  # SIGKILL mid-job: the lease lapses and the sweeper re-queues it
        assert (await usage(t))["days"] == []  # nothing counted for a job that has not ended
        second.start()
        final = await wait_status(t, job["id"], {"succeeded", "failed"}, timeout=60)
        assert (final["status"], final["attempts"]) == ("succeeded", 2), final
        receiver.wait(path, 1, timeout=20)
        total = (await caught_up(t, webhook_attempts=1, webhooks_delivered=1))["total"]
        by_format = await stored_bytes(stack, t.client_id, final)
        assert {k: total[k] for k in ("jobs", "succeeded", "failed", "source_megapixels", "output_bytes")} == {
            "jobs": 1, "succeeded": 1, "failed": 0, "source_megapixels": 4.32, "output_bytes": by_format}  # fmt: skip
        assert (total["webhook_attempts"], total["webhooks_delivered"]) == (1, 1)
        assert total["engine_cpu_seconds"] > 0
        await t.http.aclose()
    finally:
        first.kill()
        second.stop()
        api.stop()


async def test_range_checks_scope_and_other_days(stack: Stack, api: ApiServer) -> None:
    t = await make_tenant(stack, api)
    for params, field in (({"from": "2025-13-01"}, "$.from"), ({"to": "yesterday"}, "$.to"),
                          ({"from": "2025-02-02", "to": "2025-02-01"}, "$.from"),
                          ({"from": "2024-01-01", "to": "2025-01-01"}, "$.from")):  # fmt: skip
        r = await t.http.get("/v1/usage", params=params)
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["code"] == "invalid_request" and r.json()["errors"][0]["path"] == field, r.text
    # the admin CLI checks the same range, in one line on stderr
    assert refused(stack, "clients", "usage", t.name, "--from", "2026-02-30") == (
        "pixelflow: --from: expected a day as YYYY-MM-DD, got '2026-02-30'\n")  # fmt: skip
    year = await usage(t, **{"from": "2024-01-01", "to": "2024-12-31"})  # 366 days: a leap year is allowed
    assert (year["from"], year["to"], year["days"], year["total"]) == ("2024-01-01", "2024-12-31", [], NOTHING)

    # jobs:read is enough; a key without it is refused
    for scopes, status in ((["jobs:read"], 200), (["jobs:write"], 403)):
        created = cli_json(stack, "keys", "create", t.name, *[f"--scope={s}" for s in scopes])
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {created['key']}"}) as h:
            r = await h.get("/v1/usage")
            assert r.status_code == status, r.text
            if status == 403:
                assert r.json()["code"] == "insufficient_scope"
    await t.http.aclose()


def _photo(width: int, height: int, seed: int) -> bytes:
    return encode(photo(width, height, seed=seed), ".jpg", Q=80)


ONE_VARIANT = {"version": 1, "pipeline": [{"id": "small", "action": "resize", "width": 64, "format": "jpeg"}]}


async def test_daily_quota_global_and_per_client(stack: Stack) -> None:
    """A global quota of 1 MP: a 1 MP job spends it and the next start is 429 with Retry-After until
    midnight UTC (the job stays `created`); a client allowed 3 MP runs on; another client without
    the global quota's history is unaffected."""
    queue = f"pixelflow:quota-{uuid.uuid4().hex[:6]}"
    env = {**stack.env, "PIXELFLOW_QUEUE_NAME": queue, "PIXELFLOW_DAILY_SOURCE_MEGAPIXELS": "1"}
    api = ApiServer(stack.settings(queue_name=queue, daily_source_megapixels=1), free_port()).start()
    worker = WorkerProcess(env, stack.workdir / "quota.log").start()
    try:
        small, big = await make_tenant(stack, api), await make_tenant(stack, api)
        cli_json(stack, "clients", "limits", big.name, "--daily-source-megapixels", "3")
        limits = (await small.http.get("/v1/limits")).json()
        assert (limits["daily_source_megapixels"], limits["source_megapixels_today"]) == (1, 0.0)
        assert "daily_source_megapixels" not in limits["overridden"]
        limits = (await big.http.get("/v1/limits")).json()
        assert limits["daily_source_megapixels"] == 3 and "daily_source_megapixels" in limits["overridden"]

        source = _photo(1000, 1000, seed=31)  # exactly 1 megapixel
        for t in (small, big):
            job = await create_and_upload(t, ONE_VARIANT, source)
            assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
            assert (await wait_status(t, job["id"], {"succeeded", "failed"}))["status"] == "succeeded"
        assert (await small.http.get("/v1/limits")).json()["source_megapixels_today"] == 1.0

        refused_job = await create_and_upload(small, ONE_VARIANT, source)
        before = quota_resets_in()
        spent = await small.http.post(f"/v1/jobs/{refused_job['id']}/start")
        assert spent.status_code == 429 and spent.json()["code"] == "daily_quota_exceeded", spent.text
        assert spent.headers["content-type"].startswith("application/problem+json")
        assert before - 5 <= int(spent.headers["Retry-After"]) <= before
        assert "1 source megapixels" in spent.json()["detail"]
        assert (await small.http.get(f"/v1/jobs/{refused_job['id']}")).json()["status"] == "created"
        # the SDK raises it at once (waiting for Retry-After would take hours) and reads the report typed
        with Client(api.url, small.key) as pf:
            began = time.monotonic()
            with pytest.raises(QuotaExceeded) as err:
                pf.start(refused_job["id"])
            # at once: waiting out Retry-After would take hours; the bound is a loaded machine's
            assert time.monotonic() - began < SLACK and err.value.retry_after is not None
            assert err.value.retry_after > 0 and err.value.code == "daily_quota_exceeded"
            typed = pf.usage(date.fromisoformat(today()), today())
            assert (typed.total.succeeded, typed.total.source_megapixels, typed.days[0].day.isoformat()) == (
                1, 1.0, today())  # fmt: skip
        # so does the remote CLI, with the API's own document under --json
        remote = pixelflow(env_for(api.url, small.key), "usage", "--from", today(), "--json")
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout) == await usage(small, **{"from": today()})
        bad = pixelflow(env_for(api.url, small.key), "usage", "--from", "someday")
        assert bad.returncode == 1 and "$.from: expected a day as YYYY-MM-DD" in bad.stderr, bad.stderr

        job = await create_and_upload(big, ONE_VARIANT, source)  # 2 of its 3
        assert (await big.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        assert (await wait_status(big, job["id"], {"succeeded", "failed"}))["status"] == "succeeded"
        # over what is left (1 MP): runs, then is refused at the end, outputs discarded, nothing counted
        job = await create_and_upload(big, ONE_VARIANT, _photo(1200, 1000, seed=32))
        assert (await big.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        failed = await wait_status(big, job["id"], {"succeeded", "failed"})
        assert (failed["status"], failed["error"]["code"]) == ("failed", "daily_quota_exceeded"), failed
        assert "daily quota of 3 source megapixels" in failed["error"]["message"] and failed["variants"] == []
        store = open_store(stack.settings())
        try:  # the output it wrote before the quota said no is gone
            assert await store.stat(output_key(big.client_id, uuid.UUID(job["id"]), "small", "jpeg")) is None
        finally:
            await store.close()
        total = (await usage(big))["total"]
        assert (total["succeeded"], total["failed"], total["source_megapixels"]) == (2, 1, 2.0)
        for t in (small, big):
            await t.http.aclose()
    finally:
        worker.stop()
        api.stop()


async def test_racing_jobs_never_exceed_the_quota(stack: Stack, api: ApiServer, worker: WorkerProcess) -> None:
    """Quota 1 MP; four 0.48 MP jobs started at once, run two at a time: exactly two fit, the others
    fail `daily_quota_exceeded` (at the end of their run, or before it once the quota is spent)."""
    t = await make_tenant(stack, api)
    cli_json(stack, "clients", "limits", t.name, "--daily-source-megapixels", "1")
    jobs = [await create_and_upload(t, ONE_VARIANT, _photo(800, 600, seed=40 + i)) for i in range(4)]
    started = await asyncio.gather(*(t.http.post(f"/v1/jobs/{j['id']}/start") for j in jobs))
    assert [r.status_code for r in started] == [202] * 4
    ends = [await wait_status(t, j["id"], {"succeeded", "failed"}) for j in jobs]
    outcomes = sorted((e["status"], (e["error"] or {}).get("code")) for e in ends)
    assert outcomes == [("failed", "daily_quota_exceeded")] * 2 + [("succeeded", None)] * 2, outcomes
    total = (await usage(t))["total"]
    assert (total["succeeded"], total["failed"], total["source_megapixels"]) == (2, 2, 0.96)
    # 0.96 of 1 MP used: a start is still allowed, and a source that fits in the rest succeeds
    tiny = await create_and_upload(t, ONE_VARIANT, _photo(64, 64, seed=9))
    assert (await t.http.post(f"/v1/jobs/{tiny['id']}/start")).status_code == 202
    assert (await wait_status(t, tiny["id"], {"succeeded", "failed"}))["status"] == "succeeded"
    await t.http.aclose()


def test_the_migration_fills_usage_from_the_jobs_before_it(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """0008 counts the jobs and webhook attempts that ended before metering existed (no CPU time)."""
    import psycopg

    import infra.db as db
    from devstack.backing_services import PostgresServer

    every = db._migrations()
    pg = PostgresServer(stack.workdir / "pg-0008")
    pg.start()
    try:
        monkeypatch.setattr(db, "_migrations", lambda: [m for m in every if m[0] < "0008"])
        db.migrate(pg.url)
        client, ok, failed, queued, delivery = (uuid.uuid4() for _ in range(5))
        with psycopg.connect(pg.url, autocommit=True) as c:
            c.execute("INSERT INTO clients (id, name) VALUES (%s, 'before')", (client,))
            for job, status in ((ok, "succeeded"), (failed, "failed"), (queued, "queued")):
                c.execute("INSERT INTO jobs (id, client_id, status, spec, spec_sha256, source_key, source_width,"
                          " source_height, finished_at) VALUES (%s, %s, %s, '{}', '', 'k', 100, 50, now())",
                          (job, client, status))  # fmt: skip
            for variant, fmt, size in (("a", "webp", 10), ("b", "webp", 5), ("c", "png", 7)):
                c.execute("INSERT INTO variants (job_id, variant_id, format, content_type, width, height, bytes,"
                          " object_key) VALUES (%s, %s, %s, 'x', 1, 1, %s, 'k')", (ok, variant, fmt, size))  # fmt: skip
            c.execute("INSERT INTO webhook_deliveries (id, message_id, job_id, event, url, payload, status)"
                      " VALUES (%s, %s, %s, 'job.succeeded', 'u', '{}', 'delivered')", (delivery, delivery, ok))  # fmt: skip
            c.execute("INSERT INTO webhook_attempts (delivery_id, attempt, response_status, duration_ms)"
                      " VALUES (%s, 1, 500, 1), (%s, 2, 200, 1)", (delivery, delivery))  # fmt: skip
        monkeypatch.setattr(db, "_migrations", lambda: every)
        assert db.migrate(pg.url) == [m[0] for m in every if m[0] >= "0008"]
        with psycopg.connect(pg.url) as c:
            rows = c.execute("SELECT outcome, source_pixels, output_bytes, engine_cpu_seconds,"
                             " day = (now() AT TIME ZONE 'UTC')::date"
                             " FROM job_usage ORDER BY outcome").fetchall()  # fmt: skip
            assert rows == [("failed", 0, {}, 0.0, True), ("succeeded", 5000, {"png": 7, "webp": 15}, 0.0, True)]
            assert c.execute("SELECT attempts, delivered FROM webhook_usage").fetchall() == [(2, 1)]
    finally:
        pg.stop()


async def test_a_webhook_the_ssrf_guard_refuses_is_logged_not_counted(stack: Stack, receiver: WebhookReceiver) -> None:
    """Nothing was sent, so nothing is billed: the attempt is in the delivery's history only."""
    from data_plane.deps import open_deps
    from data_plane.webhooks import deliver

    queue = f"pixelflow:usage-guard-{uuid.uuid4().hex[:6]}"  # no worker reads it: the delivery waits for us
    api = ApiServer(stack.settings(queue_name=queue), free_port()).start()
    try:
        t = await make_tenant(stack, api)
        job = (await t.http.post("/v1/jobs", json=spec(receiver.url(f"/guard/{t.name}")))).json()
        assert (await t.http.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
        (delivery,) = (await t.http.get(f"/v1/jobs/{job['id']}/deliveries")).json()
        async with open_deps(stack.settings(queue_name=queue, webhook_allow_private=False)) as deps:
            assert (await deliver(deps, uuid.UUID(delivery["id"]), 1)).outcome == "blocked"
        (delivery,) = (await t.http.get(f"/v1/jobs/{job['id']}/deliveries")).json()
        assert delivery["attempts"] == 1 and delivery["status"] == "failed"
        assert receiver.at(f"/guard/{t.name}") == []
        total = (await usage(t))["total"]
        assert (total["canceled"], total["webhook_attempts"], total["webhooks_delivered"]) == (1, 0, 0)
        await t.http.aclose()
    finally:
        api.stop()
