"""At-least-once processing: a worker SIGKILLed mid-job is replaced and the job still succeeds,
once, with one webhook. Uses its own queue so the session's worker cannot take the job."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import ApiServer, Stack, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import create_and_upload

pytestmark = pytest.mark.integration

HEAVY = {
    "version": 1,
    "pipeline": [
        {
            "id": f"v{i}",
            "steps": [{"op": "blur", "sigma": 12}, {"op": "resize", "width": 1600 - i * 100}],
            "format": "png",
        }
        for i in range(6)
    ],
}


async def test_worker_killed_mid_job_still_succeeds(stack: Stack, receiver: WebhookReceiver) -> None:
    queue = f"pixelflow:kill-{uuid.uuid4().hex[:6]}"
    env = {**stack.env, "PIXELFLOW_QUEUE_NAME": queue}
    api = ApiServer(stack.settings(queue_name=queue), free_port()).start()
    first = WorkerProcess(env, stack.workdir / "kill-1.log").start()
    second = WorkerProcess(env, stack.workdir / "kill-2.log")
    try:
        t = await make_tenant(stack, api)
        path = f"/kill/{t.name}"
        job = await create_and_upload(
            t, {**HEAVY, "webhook_url": receiver.url(path)}, encode(photo(2400, 1800, seed=5), ".jpg", Q=80)
        )
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        await wait_status(t, job["id"], {"processing"}, timeout=30)
        await asyncio.sleep(0.3)
        first.kill()  # SIGKILL: no cleanup; the job's lease lapses and the sweeper re-queues it
        assert (await t.http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "processing"
        second.start()
        final = await wait_status(t, job["id"], {"succeeded", "failed"}, timeout=60)
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 2
        assert sorted(v["id"] for v in final["variants"]) == [f"v{i}" for i in range(6)]
        events = receiver.wait(path, 1, timeout=20)
        await asyncio.sleep(1)
        assert len(receiver.at(path)) == len(events) == 1
        await t.http.aclose()
    finally:
        first.kill()
        second.stop()
        api.stop()
