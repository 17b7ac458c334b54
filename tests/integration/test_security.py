"""Secrets stay secret, and webhooks cannot be bounced to internal addresses."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from infra.logs import JsonFormatter
from tests.integration.conftest import ISSUED_KEYS, Stack, Tenant, WorkerProcess, wait_status
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration


async def test_keys_and_secrets_never_reach_logs_or_responses(
    stack: Stack, tenant: Tenant, worker: WorkerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job = await create_and_upload(tenant, spec(), encode(photo(200, 100), ".jpg"))
    await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    bodies = [str(final), str(job), (await tenant.http.get("/v1/jobs")).text]
    bad = await tenant.http.get("/v1/jobs", headers={"Authorization": f"Bearer {tenant.key}x"})
    bodies.append(bad.text)
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    files = "\n".join(p.read_text(errors="replace") for p in stack.workdir.glob("*.log"))
    assert ISSUED_KEYS
    for secret in ISSUED_KEYS:
        for where, text in (("responses", "\n".join(bodies)), ("API logs", logged), ("worker logs", files)):
            assert secret not in text, f"a key or webhook secret appeared in {where}"


async def test_webhook_redirects_are_not_followed(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    inner = f"/internal/{tenant.name}"
    path = f"/redirect/{tenant.name}"
    receiver.respond(path, *[(302, {"Location": receiver.url(inner)})] * 12)
    job = await create_and_upload(tenant, spec(receiver.url(path)), encode(photo(200, 100), ".jpg"))
    await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    receiver.wait(path, 3, timeout=30)
    await asyncio.sleep(1)
    assert receiver.at(inner) == []  # the redirect target was never contacted
    (d,) = (await tenant.http.get(f"/v1/jobs/{job['id']}/deliveries")).json()
    assert d["history"][0]["response_status"] == 302 and d["status"] in ("pending", "failed")
