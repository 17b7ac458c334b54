"""The control plane's contract on real services: auth, isolation, limits, validation, idempotency,
presigned URLs, upload checks, listing, cancel, dry runs, health."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from tests.engine.test_hostile import png_header_only
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer", "Bearer pf_doesnotexist0000000000000000", "Basic dXNlcjpwYXNz", "pf_raw_key_without_scheme"],
)
async def test_missing_or_bad_key_is_401_problem(api: ApiServer, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    async with httpx.AsyncClient(base_url=api.url) as http:
        for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("POST", "/v1/specs/validate")]:
            r = await http.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["code"] == "unauthorized"


async def test_revoked_key_is_401(stack: Stack, api: ApiServer) -> None:
    from infra.db import open_pool
    from infra.repo import ClientRepo

    t = await make_tenant(stack, api)
    assert (await t.http.get("/v1/jobs")).status_code == 200
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        assert await ClientRepo(pool).revoke_key(t.key_id)
    finally:
        await pool.close()
    r = await t.http.get("/v1/jobs")
    assert r.status_code == 401 and t.key not in r.text
    await t.http.aclose()


async def test_clients_never_see_each_others_jobs(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    other = await make_tenant(stack, api)
    try:
        job = (await tenant.http.post("/v1/jobs", json=spec())).json()
        jid = job["id"]
        for method, path in [
            ("GET", f"/v1/jobs/{jid}"),
            ("POST", f"/v1/jobs/{jid}/start"),
            ("POST", f"/v1/jobs/{jid}/cancel"),
            ("GET", f"/v1/jobs/{jid}/variants/large"),
            ("GET", f"/v1/jobs/{jid}/deliveries"),
            ("POST", f"/v1/jobs/{jid}/deliveries/redeliver"),
        ]:
            r = await other.http.request(method, path)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.json()["code"] == "not_found"
        assert jid not in (await other.http.get("/v1/jobs")).text
        assert (await tenant.http.get(f"/v1/jobs/{jid}")).status_code == 200
    finally:
        await other.http.aclose()


async def test_invalid_spec_is_422_with_paths(tenant: Tenant) -> None:
    bad = {"version": 1, "pipeline": [{"id": "a"}, {"id": "b"}, {"id": "c", "steps": [{"op": "resize", "width": 0}]}]}
    r = await tenant.http.post("/v1/jobs", json=bad)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["code"] == "invalid_spec"
    assert problem["errors"] == [{"path": "$.pipeline[2].steps[0].width", "message": "Expected int >= 1"}]
    r = await tenant.http.post("/v1/jobs", json={"version": 1, "pipeline": [{"id": "a", "bogus": 1}]})
    assert r.json()["errors"][0] == {"path": "$.pipeline[0]", "message": "Object contains unknown field 'bogus'"}


async def test_malformed_json_is_a_400_problem(tenant: Tenant) -> None:
    r = await tenant.http.post("/v1/jobs", content=b'{"version": 1,', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM)


async def test_private_webhook_urls_are_refused_by_default(stack: Stack) -> None:
    server = ApiServer(stack.settings(webhook_allow_private=False), free_port()).start()
    try:
        t = await make_tenant(stack, server)
        for url in ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://localhost/x", "http://[::1]/x"]:
            r = await t.http.post("/v1/jobs", json=spec(url))
            assert r.status_code == 422, url
            assert r.json()["errors"][0]["path"] == "$.webhook_url"
        assert (await t.http.post("/v1/jobs", json=spec("https://hooks.example.com/x"))).status_code == 201
        await t.http.aclose()
    finally:
        server.stop()


async def test_idempotency_key_replays_the_same_job(tenant: Tenant) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await tenant.http.post("/v1/jobs", json=spec(), headers=headers)
    again = await tenant.http.post("/v1/jobs", json=spec(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await tenant.http.post("/v1/jobs", json=spec(), headers={"Idempotency-Key": "order-43"})
    assert other.json()["id"] != first.json()["id"]
    changed = await tenant.http.post("/v1/jobs", json={**spec(), "metadata": {"x": 1}}, headers=headers)
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"


async def test_rate_limit_gives_429_with_headers(stack: Stack) -> None:
    server = ApiServer(stack.settings(rate_limit_per_minute=60, rate_limit_burst=3), free_port()).start()
    try:
        t = await make_tenant(stack, server)
        statuses = []
        started = time.monotonic()
        while 429 not in statuses and len(statuses) < 20:
            r = await t.http.post("/v1/jobs", json=spec())
            statuses.append(r.status_code)
            assert r.headers["ratelimit-policy"] == '"jobs";q=3;w=3'
            assert r.headers["ratelimit"].startswith('"jobs";r=')
        # the burst, and what the rate (one a second) refilled while a loaded machine sent them
        refilled = time.monotonic() - started
        assert set(statuses[:-1]) == {201} and statuses[-1] == 429, statuses
        assert 3 <= len(statuses) - 1 <= 3 + refilled, statuses
        assert r.headers["content-type"].startswith(PROBLEM)
        assert 1 <= int(r.headers["retry-after"]) <= 2
        assert r.json()["code"] == "rate_limited"
        assert r.json()["detail"] == "job creation is limited to 60 per minute per client"
        other = await make_tenant(stack, server)  # limits are per client
        assert (await other.http.post("/v1/jobs", json=spec())).status_code == 201
        await asyncio.sleep(1.1)
        assert (await t.http.post("/v1/jobs", json=spec())).status_code == 201
        await t.http.aclose()
        await other.http.aclose()
    finally:
        server.stop()


async def test_concurrent_job_cap_per_client(stack: Stack) -> None:
    server = ApiServer(stack.settings(max_concurrent_jobs_per_client=1), free_port()).start()
    try:
        t = await make_tenant(stack, server)  # no worker is consuming this tenant's jobs fast enough to matter
        data = encode(photo(200, 100), ".jpg")
        first = await create_and_upload(t, spec(), data)
        second = await create_and_upload(t, spec(), data)
        assert (await t.http.post(f"/v1/jobs/{first['id']}/start")).status_code == 202
        r = await t.http.post(f"/v1/jobs/{second['id']}/start")
        if r.status_code == 202:  # the first already finished: the cap frees up, as it should
            pytest.skip("a worker finished the first job before the second start")
        assert r.status_code == 429 and r.json()["code"] == "too_many_active_jobs"
        assert r.headers["retry-after"] == "5"
        await t.http.aclose()
    finally:
        server.stop()


async def test_presigned_put_rejects_tampering_and_expiry(stack: Stack, tenant: Tenant) -> None:
    job = (await tenant.http.post("/v1/jobs", json=spec())).json()
    url = job["upload"]["put"]["url"]
    data = encode(photo(64, 64), ".jpg")
    async with httpx.AsyncClient() as plain:
        other_key = url.replace(job["id"], "00000000-0000-0000-0000-000000000000")
        assert (await plain.put(other_key, content=data)).status_code == 403
        forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
        assert (await plain.put(forged, content=data)).status_code == 403
        # an URL signed for 1 s, used after it expired
        from infra.storage import open_store

        store = open_store(stack.settings())
        short = store.presign_put(f"uploads/{tenant.client_id}/{job['id']}", expires=timedelta(seconds=1), max_bytes=10)
        time.sleep(2.1)
        r = await plain.put(short.url, content=data)
        assert r.status_code == 403 and "expired" in r.text.lower()
        assert (await plain.put(url, content=data)).status_code == 200


async def test_presigned_post_enforces_the_size_limit(tenant: Tenant) -> None:
    job = (await tenant.http.post("/v1/jobs", json=spec())).json()
    post = job["upload"]["post"]
    too_big = b"\xff\xd8\xff" + b"\0" * (job["upload"]["max_bytes"] + 1)
    async with httpx.AsyncClient() as plain:
        r = await plain.post(
            post["url"], data={**post["fields"], "Content-Type": "image/jpeg"}, files={"file": ("x.jpg", too_big)}
        )
        assert r.status_code == 400 and "EntityTooLarge" in r.text
        ok = encode(photo(64, 64), ".jpg")
        r = await plain.post(
            post["url"], data={**post["fields"], "Content-Type": "image/jpeg"}, files={"file": ("x.jpg", ok)}
        )
        assert r.status_code in (200, 201, 204), r.text
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202


async def test_start_without_upload_is_409_and_job_stays_startable(tenant: Tenant) -> None:
    job = (await tenant.http.post("/v1/jobs", json=spec())).json()
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert r.status_code == 409 and r.json()["code"] == "upload_missing"
    assert (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "created"


async def test_oversize_upload_is_refused_at_start(tenant: Tenant) -> None:
    big = b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024 + 10)
    job = await create_and_upload(tenant, spec(), big)
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert r.status_code == 413 and r.json()["code"] == "source_too_large"
    final = (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == "failed" and final["error"]["code"] == "source_too_large"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"this is plainly text, not an image" * 10, "not a recognised image"), (b"%PDF-1.7\n" + b"0" * 100, "PDF")],
)
async def test_non_image_is_refused_at_start(tenant: Tenant, payload: bytes, reason: str) -> None:
    job = await create_and_upload(tenant, spec(), payload)
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert r.status_code == 415 and r.json()["code"] == "unsupported_format"
    assert reason in r.json()["detail"]
    assert (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()["error"]["code"] == "unsupported_format"


async def test_corrupt_image_fails_the_job_with_a_reason(tenant: Tenant, worker: WorkerProcess) -> None:
    good = encode(photo(800, 600), ".jpg")
    job = await create_and_upload(tenant, spec(), good[: len(good) // 3])
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert final["status"] == "failed"
    assert final["error"]["code"] == "corrupt_image"
    assert final["variants"] == []


async def test_job_over_budget_for_its_source_fails_before_decoding(tenant: Tenant, worker: WorkerProcess) -> None:
    # A header claiming 64 MP and nothing else: decoding it would fail with corrupt_image, so
    # over_budget shows the worker refused from the header alone.
    body = {"version": 1, "pipeline": [{"id": "a", "format": "avif", "effort": 4}]}
    job = await create_and_upload(tenant, body, png_header_only(8000, 8000))
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert (final["status"], final["error"]["code"]) == ("failed", "over_budget")
    assert "variant 'a'" in final["error"]["message"]


async def test_list_filters_and_paginates(tenant: Tenant) -> None:
    ids = [(await tenant.http.post("/v1/jobs", json=spec())).json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await tenant.http.get("/v1/jobs", params=params)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert (await tenant.http.get("/v1/jobs", params={"status": "succeeded"})).json()["jobs"] == []
    assert (await tenant.http.get("/v1/jobs", params={"status": "nope"})).status_code == 400
    assert (await tenant.http.get("/v1/jobs", params={"cursor": "garbage"})).status_code == 422


async def test_cancel(tenant: Tenant) -> None:
    job = (await tenant.http.post("/v1/jobs", json=spec())).json()
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    again = await tenant.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "job_canceled"
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 409


async def test_dry_run_predicts_sizes(tenant: Tenant) -> None:
    body = {"spec": spec(), "source": {"width": 4000, "height": 3000, "format": "jpeg"}}
    r = await tenant.http.post("/v1/specs/validate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["valid"] is True and out["decode_size"] == [640, 480]
    assert [(v["id"], v["format"], v["width"], v["height"]) for v in out["variants"]] == [
        ("large", "webp", 640, 480),
        ("thumb", "jpeg", 120, 120),
        ("gray", "png", 640, 480),
    ]
    assert out["spec"]["pipeline"][1]["steps"][0]["op"] == "resize"  # normalised from the compact form
    bad = await tenant.http.post("/v1/specs/validate", json={"spec": {"version": 1, "pipeline": []}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.pipeline"


async def test_dry_run_estimates_cost_and_reports_every_limit(tenant: Tenant) -> None:
    body = {"spec": spec(), "source": {"width": 4000, "height": 3000, "format": "jpeg"}}
    out = (await tenant.http.post("/v1/specs/validate", json=body)).json()
    assert out["valid"] is True and out["errors"] == [] and out["max_cost"] == 120_000
    assert all(v["cost"] > 0 for v in out["variants"]) and out["cost"] > sum(v["cost"] for v in out["variants"])

    # 150 MP: the engine refuses it with output_too_large, so the dry run must not call it valid
    big = {"version": 1, "pipeline": [{"id": "a"}, {"id": "huge", "action": "resize", "width": 15000, "height": 10000}]}
    out = (
        await tenant.http.post("/v1/specs/validate", json={"spec": big, "source": {"width": 600, "height": 400}})
    ).json()
    assert out["valid"] is False
    assert [(e["path"], e["code"]) for e in out["errors"]] == [("$.pipeline[1].steps[0]", "output_too_large")]
    assert out["variants"][1]["width"] == 15000 and "15000x10000" in out["plan_error"]
    out = (await tenant.http.post("/v1/specs/validate", json={"spec": big})).json()
    assert out["valid"] is False  # a box that size is too large whatever the source
    assert (await tenant.http.post("/v1/jobs", json=big)).json()["code"] == "output_too_large"

    slow = {"version": 1, "pipeline": [{"id": "a", "format": "avif", "effort": 9}]}
    source = {"width": 8000, "height": 8000, "format": "jpeg"}
    out = (await tenant.http.post("/v1/specs/validate", json={"spec": slow})).json()
    assert out["valid"] is True  # cheap or not depends on the source
    out = (await tenant.http.post("/v1/specs/validate", json={"spec": slow, "source": source})).json()
    assert out["valid"] is False and out["cost"] > out["max_cost"]
    assert [(e["path"], e["code"]) for e in out["errors"]] == [("$.pipeline[0]", "over_budget")]
    huge = {"width": 20000, "height": 20000}
    out = (await tenant.http.post("/v1/specs/validate", json={"spec": spec(), "source": huge})).json()
    assert [(e["path"], e["code"]) for e in out["errors"]] == [("$.source", "image_too_large")]


async def test_create_over_budget_whatever_the_source_is_422_naming_the_variant(tenant: Tenant) -> None:
    doc = spec()
    doc["pipeline"].append(
        {"id": "poster", "action": "resize", "width": 9000, "height": 9000, "format": "avif", "effort": 9}
    )
    r = await tenant.http.post("/v1/jobs", json=doc)
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["code"] == "over_budget"
    assert [e["path"] for e in problem["errors"]] == ["$.pipeline[3]"]
    assert "'poster'" in problem["errors"][0]["message"] and "avif" in problem["errors"][0]["message"]
    out = (await tenant.http.post("/v1/specs/validate", json={"spec": doc})).json()
    assert out["valid"] is False and out["errors"][0]["path"] == "$.pipeline[3]"
    # the same output in a fast encoder is fine
    doc["pipeline"][3] |= {"format": "jpeg", "effort": None}
    assert (await tenant.http.post("/v1/jobs", json=doc)).status_code == 201


async def test_health_and_readiness(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok", "checks": {}}
        ready = (await http.get("/readyz")).json()
        assert ready == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "storage": "ok"}}
        openapi = (await http.get("/schema/openapi.json")).json()
        assert "/v1/jobs" in openapi["paths"] and "/v1/uploads" in openapi["paths"]
        assert openapi["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


async def test_body_size_limit(tenant: Tenant) -> None:
    huge = {"version": 1, "pipeline": [{"id": "a"}], "metadata": {"k": "x" * (2 * 1024 * 1024)}}
    r = await tenant.http.post("/v1/jobs", json=huge)
    assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM)
