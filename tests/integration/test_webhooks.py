"""Webhook delivery against a real receiver: signatures, quick and long retries, Retry-After,
410 Gone, unreachable receivers, redelivery, and every attempt recorded."""

from __future__ import annotations

import asyncio

import pytest
from standardwebhooks.webhooks import Webhook

from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import Tenant, WorkerProcess, wait_status
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration


async def run_job(t: Tenant, webhook: str) -> dict:
    job = await create_and_upload(t, spec(webhook), encode(photo(320, 240), ".jpg"))
    assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    return await wait_status(t, job["id"], {"succeeded", "failed"})


async def deliveries(t: Tenant, job_id: str, until: set[str], timeout: float = 40) -> list[dict]:
    for _ in range(int(timeout * 10)):
        found = (await t.http.get(f"/v1/jobs/{job_id}/deliveries")).json()
        if found and all(d["status"] in until for d in found):
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(found)


async def test_500_then_200_is_delivered_with_attempts_logged(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    path = f"/flaky/{tenant.name}"
    receiver.respond(path, 500)
    job = await run_job(tenant, receiver.url(path))
    got = receiver.wait(path, 2)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]  # same message, retried
    assert got[0].body == got[1].body
    Webhook(tenant.secret).verify(got[1].body, got[1].headers)
    (d,) = await deliveries(tenant, job["id"], {"delivered"})
    assert d["attempts"] == 2
    assert [(a["attempt"], a["response_status"]) for a in d["history"]] == [(1, 500), (2, 200)]
    assert d["history"][0]["error"] == "receiver answered 500"


async def test_long_schedule_defers_through_arq_and_honours_retry_after(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    path = f"/slow/{tenant.name}"
    receiver.respond(path, 503, 503, (503, {"Retry-After": "2"}))
    job = await run_job(tenant, receiver.url(path))
    got = receiver.wait(path, 4, timeout=30)
    gap = got[3].at - got[2].at
    assert gap >= 1.9, f"Retry-After: 2 was not honoured (gap {gap:.2f} s)"
    (d,) = await deliveries(tenant, job["id"], {"delivered"})
    assert [a["response_status"] for a in d["history"]] == [503, 503, 503, 200]


async def test_410_gone_disables_the_endpoint(tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver) -> None:
    path = f"/gone/{tenant.name}"
    receiver.respond(path, 410)
    first = await run_job(tenant, receiver.url(path))
    (d,) = await deliveries(tenant, first["id"], {"failed"})
    assert d["attempts"] == 1 and "410" in d["last_error"]
    second = await run_job(tenant, receiver.url(path))
    await asyncio.sleep(1)
    assert (await tenant.http.get(f"/v1/jobs/{second['id']}/deliveries")).json() == []
    assert len(receiver.at(path)) == 1


async def test_unreachable_receiver_fails_delivery_not_the_job(tenant: Tenant, worker: WorkerProcess) -> None:
    from devstack.backing_services import free_port

    job = await run_job(tenant, f"http://127.0.0.1:{free_port()}/nobody-home")
    assert job["status"] == "succeeded"
    (d,) = await deliveries(tenant, job["id"], {"failed"}, timeout=60)
    assert d["attempts"] == 12  # 4 rounds (PIXELFLOW_WEBHOOK_MAX_ATTEMPTS) of 3 quick tries
    assert "could not be reached" in d["last_error"]
    assert all(a["response_status"] is None for a in d["history"])
    assert (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "succeeded"


async def test_redeliver_sends_the_same_event_again(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    path = f"/again/{tenant.name}"
    job = await run_job(tenant, receiver.url(path))
    receiver.wait(path, 1)
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/deliveries/redeliver")
    assert r.status_code == 202
    got = receiver.wait(path, 2)
    assert got[0].body == got[1].body
    # Standard Webhooks: the id names the message, so a redelivery keeps it and receivers dedupe on it
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    Webhook(tenant.secret).verify(got[1].body, got[1].headers)
    found = await deliveries(tenant, job["id"], {"delivered"})
    assert len(found) == 2
    assert found[0]["id"] != found[1]["id"] and found[0]["webhook_id"] == found[1]["webhook_id"]
    assert found[0]["webhook_id"] == got[0].headers["webhook-id"]


async def test_failed_job_sends_job_failed_with_the_reason(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    path = f"/failed/{tenant.name}"
    body = spec(receiver.url(path))
    body["pipeline"].append({"id": "cut", "action": "crop", "left": 5000, "top": 0, "width": 10, "height": 10})
    job = await create_and_upload(tenant, body, encode(photo(320, 240), ".jpg"))
    await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    (got,) = receiver.wait(path, 1)
    event = Webhook(tenant.secret).verify(got.body, got.headers)
    assert event["type"] == "job.failed"
    assert event["data"]["error"]["code"] == "invalid_operation"
    assert "lies outside" in event["data"]["error"]["message"]
    assert event["data"]["variants"] == []
