"""Issue #10 item 2: redeliver made one signed POST per call, unbounded (300 calls in 2 s, 301
POSTs). It is rate-limited per job and per client now, and a redelivery keeps its webhook-id."""

from __future__ import annotations

import asyncio

from devstack.receiver import WebhookReceiver
from tests.integration.conftest import Tenant, WorkerProcess
from tests.integration.test_webhooks import run_job
from tests.security.conftest import record


async def test_redeliver_is_rate_limited_per_job(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    """300 redeliver calls in a burst used to make 301 signed POSTs; now 3, then one a minute."""
    path = f"/cannon/{tenant.name}"
    job = await run_job(tenant, receiver.url(path))
    receiver.wait(path, 1)
    answers = [(await tenant.http.post(f"/v1/jobs/{job['id']}/deliveries/redeliver")) for _ in range(30)]
    codes = [r.status_code for r in answers]
    for r in answers[3:]:  # the burst past the limit is the hostile part
        record("redeliver burst past the limit", r.status_code)
    assert codes[:3] == [202, 202, 202] and set(codes[3:]) == {429}, codes
    refused = answers[3]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "redelivery_rate_limited" and int(refused.headers["retry-after"]) >= 1
    got = receiver.wait(path, 4)
    await asyncio.sleep(1)
    assert len(receiver.at(path)) == 4 and len({g.headers["webhook-id"] for g in got}) == 1
