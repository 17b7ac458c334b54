"""Per-client policy on real services: `pixelflow clients limits` overrides the global limits for one
client, `GET /v1/limits` shows them, and the API (rate, burst, concurrency, budget) and the worker
(source pixels) apply them, while other clients keep the global ones."""

from __future__ import annotations

import uuid

import httpx
import pytest

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_cli_admin import cli_json
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration

GLOBAL = {  # the suite's settings (tests/integration/conftest.py) and the defaults
    "rate_limit_per_minute": 600,
    "rate_limit_burst": 200,
    "max_concurrent_jobs_per_client": 50,
    "max_source_pixels": 100_000_000,
    "max_job_cost": 120_000,
    "daily_source_megapixels": None,
    "daily_engine_cpu_seconds": None,
    "scheduling_weight": 1,  # fair scheduling
    "max_running_jobs_per_client": 1000,
    "interactive_jobs_per_client": 2,
    "retain_originals_days": None,  # kept until deleted
    "retain_outputs_days": None,
    "output_key_template": "{client}/{job}/{variant}.{ext}",
    "url_templates_only": False,  # signed image URLs (docs/delivery.md)
    "url_widths": "",
    "url_source_origins": "",
}
# GET /v1/limits and the CLI add what today's quotas used
TODAY = {"source_megapixels_today": 0.0, "engine_cpu_seconds_today": 0.0, "deadline_exceeded_today": 0}


async def test_limits_show_the_global_values_then_the_clients_own(stack: Stack, tenant: Tenant) -> None:
    assert (await tenant.http.get("/v1/limits")).json() == {**GLOBAL, **TODAY, "overridden": []}
    shown = cli_json(stack, "clients", "limits", tenant.name, "--max-job-cost", "5000", "--rate-limit-burst", "7")
    assert shown == {"client": tenant.name, **GLOBAL, **TODAY, "max_job_cost": 5000, "rate_limit_burst": 7,
                     "overridden": ["rate_limit_burst", "max_job_cost"]}  # fmt: skip
    assert (await tenant.http.get("/v1/limits")).json() == {k: v for k, v in shown.items() if k != "client"}
    # 0 puts one back to the global value; --reset all of them
    once = cli_json(stack, "clients", "limits", tenant.name, "--rate-limit-burst", "0")
    assert (once["rate_limit_burst"], once["overridden"]) == (200, ["max_job_cost"])
    assert cli_json(stack, "clients", "limits", tenant.name, "--reset")["overridden"] == []
    assert (await tenant.http.get("/v1/limits")).json() == {**GLOBAL, **TODAY, "overridden": []}


async def test_the_api_applies_a_clients_rate_concurrency_and_budget(stack: Stack) -> None:
    # an API on a queue no worker reads: started jobs stay queued, so the concurrency cap is exact
    api = ApiServer(stack.settings(queue_name=f"pixelflow:policy-{uuid.uuid4().hex[:6]}"), free_port()).start()
    try:
        limited, other = await make_tenant(stack, api), await make_tenant(stack, api)
        cli_json(stack, "clients", "limits", limited.name, "--rate-limit-per-minute", "1", "--rate-limit-burst", "2",
                 "--max-concurrent-jobs-per-client", "1", "--max-job-cost", "50")  # fmt: skip
        source = encode(photo(400, 300, seed=2), ".jpg")
        first = await create_and_upload(limited, spec(), source)
        second = await create_and_upload(limited, spec(), source)
        refused = await limited.http.post("/v1/jobs", json=spec())
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited", refused.text
        assert refused.headers["RateLimit-Policy"] == '"jobs";q=2;w=120' and "1 per minute" in refused.json()["detail"]
        assert (await limited.http.post(f"/v1/jobs/{first['id']}/start")).status_code == 202
        busy = await limited.http.post(f"/v1/jobs/{second['id']}/start")
        assert (busy.status_code, busy.json()["code"]) == (429, "too_many_active_jobs")
        assert "at most 1 jobs" in busy.json()["detail"]
        # the dry run plans against the client's budget
        check = (
            await limited.http.post(
                "/v1/specs/validate", json={"spec": spec(), "source": {"width": 4000, "height": 3000}}
            )
        ).json()
        assert check["max_cost"] == 50 and check["valid"] is False
        assert "over_budget" in {e["code"] for e in check["errors"]}

        # the other client keeps the global limits
        for _ in range(3):
            assert (await other.http.post("/v1/jobs", json=spec())).status_code == 201
        check = (
            await other.http.post(
                "/v1/specs/validate", json={"spec": spec(), "source": {"width": 4000, "height": 3000}}
            )
        ).json()
        assert check["max_cost"] == GLOBAL["max_job_cost"] and check["valid"] is True
        for t in (limited, other):
            await t.http.aclose()
    finally:
        api.stop()


async def test_the_worker_applies_a_clients_source_pixel_limit(
    stack: Stack, api: ApiServer, worker: WorkerProcess
) -> None:
    small, other = await make_tenant(stack, api), await make_tenant(stack, api)
    cli_json(stack, "clients", "limits", small.name, "--max-source-pixels", "1000000")
    source = encode(photo(1600, 1200, seed=4), ".jpg", Q=85)  # 1.92 megapixels
    refused = await create_and_upload(small, spec(), source)
    accepted = await create_and_upload(other, spec(), source)
    for t, job in ((small, refused), (other, accepted)):
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    failed = await wait_status(small, refused["id"], {"succeeded", "failed"})
    assert failed["status"] == "failed" and failed["error"]["code"] == "image_too_large", failed
    assert "the limit is 1000000 pixels" in failed["error"]["message"]
    done = await wait_status(other, accepted["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    for t in (small, other):
        await t.http.aclose()


async def test_a_clients_job_budget_holds_once_the_source_is_known(
    stack: Stack, api: ApiServer, worker: WorkerProcess
) -> None:
    """The spec alone costs under 1 unit (every size but one depends on the source), so creating
    the job passes a budget of 30; with the 1600x1200 source known it is ~59, and the job ends
    `over_budget` (refused at /start or failed by the worker), while another client's runs."""
    tight, other = await make_tenant(stack, api), await make_tenant(stack, api)
    cli_json(stack, "clients", "limits", tight.name, "--max-job-cost", "30")
    source = encode(photo(1600, 1200, seed=5), ".jpg", Q=85)
    refused = await create_and_upload(tight, spec(), source)
    accepted = await create_and_upload(other, spec(), source)
    started = await tight.http.post(f"/v1/jobs/{refused['id']}/start")
    if started.status_code == 202:
        failed = await wait_status(tight, refused["id"], {"succeeded", "failed"})
        assert (failed["status"], failed["error"]["code"]) == ("failed", "over_budget"), failed
    else:
        assert started.status_code == 422 and started.json()["code"] == "over_budget", started.text
    assert (await other.http.post(f"/v1/jobs/{accepted['id']}/start")).status_code == 202
    done = await wait_status(other, accepted["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    for t in (tight, other):
        await t.http.aclose()


async def test_all_of_a_clients_keys_share_one_rate_limit(stack: Stack, api: ApiServer) -> None:
    """Minting keys adds no budget: a burst spread over two keys is allowed the client's burst in
    all, not once per key. A key's own lower limit holds as well, and its refusals (and the
    client's) leave the other key's share alone."""
    t = await make_tenant(stack, api)
    cli_json(stack, "clients", "limits", t.name, "--rate-limit-per-minute", "1", "--rate-limit-burst", "6")
    second = cli_json(stack, "keys", "create", t.name, "--name", "second")
    slow = cli_json(stack, "keys", "create", t.name, "--name", "slow", "--rate-limit", "2")
    async with (
        httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {second['key']}"}) as other,
        httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {slow['key']}"}) as limited,
    ):
        # the key with its own limit of 2: its third is refused by its own bucket
        answers = [(await limited.post("/v1/jobs", json=spec())) for _ in range(3)]
        assert [r.status_code for r in answers] == [201, 201, 429], [r.text for r in answers]
        refused = answers[-1]
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate_limited" and "this API key is limited to 2" in refused.json()["detail"]
        assert refused.headers["RateLimit-Policy"] == '"jobs-key";q=2;w=60' and int(refused.headers["Retry-After"]) >= 1
        # the client has 4 of its 6 left, whichever key asks: alternate the two full keys
        statuses = [(await (t.http if n % 2 else other).post("/v1/jobs", json=spec())).status_code for n in range(8)]
        assert statuses.count(201) == 4 and statuses[:4] == [201] * 4 and set(statuses[4:]) == {429}, statuses
    last = await t.http.post("/v1/jobs", json=spec())
    assert last.status_code == 429 and last.json()["code"] == "rate_limited"
    assert "1 per minute per client" in last.json()["detail"]
    assert last.headers["RateLimit-Policy"] == '"jobs";q=6;w=360' and "RateLimit" in last.headers
    listed = (await t.http.get("/v1/jobs")).json()["jobs"]
    assert len(listed) == 6  # the client's burst, across three keys
    await t.http.aclose()
