"""Sources other than an upload, on real services: a URL the worker fetches (the stack allows
origins on loopback), and another job's stored original (backfills)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import pyvips

from devstack.imagegen import encode, photo
from devstack.origin import Origin
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_cli_admin import cli_json

pytestmark = pytest.mark.integration

JPEG = encode(photo(800, 600, seed=21), ".jpg", Q=85)
PNG = encode(photo(320, 240, seed=22), ".png")
TERMINAL = {"succeeded", "failed", "canceled"}


def spec(source: dict, webhook: str | None = None, width: int = 200) -> dict:
    doc: dict = {
        "version": 1,
        "source": source,
        "pipeline": [{"id": "small", "action": "resize", "width": width, "fit": "inside", "format": "webp"}],
    }
    if webhook:
        doc["webhook_url"] = webhook
    return doc


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


async def create(t: Tenant, body: dict) -> dict:
    r = await t.http.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] in ("queued", "processing", "succeeded") and job["upload"] is None  # queued in one call
    return job


async def variant_image(job: dict) -> pyvips.Image:
    (variant,) = job["variants"]
    async with httpx.AsyncClient() as plain:
        data = (await plain.get(variant["url"])).content
    assert len(data) == variant["bytes"]
    return pyvips.Image.new_from_buffer(data, "")


@pytest.mark.parametrize(
    ("name", "data", "fmt", "size"), [("a.jpg", JPEG, "jpeg", (800, 600)), ("b", PNG, "png", (320, 240))]
)
async def test_a_url_source_is_fetched_stored_and_processed(
    tenant: Tenant, worker: WorkerProcess, origin: Origin, name: str, data: bytes, fmt: str, size: tuple[int, int]
) -> None:
    # The Content-Type lies; the bytes decide.
    url = origin.serve(f"/{tenant.name}/{name}", data, content_type="text/html")
    job = await create(tenant, spec({"url": url}))
    final = await wait_status(tenant, job["id"], TERMINAL)
    assert final["status"] == "succeeded", final["error"]
    assert final["source"] == {"bytes": len(data), "format": fmt, "width": size[0], "height": size[1]}
    image = await variant_image(final)
    assert max(image.width, image.height) == 200
    assert origin.hits[f"/{tenant.name}/{name}"] == 1


@pytest.mark.parametrize(
    ("route", "code"),
    [
        ("missing", "source_unreachable"),  # 404
        ("broken", "source_unreachable"),  # 500
        ("text", "unsupported_format"),  # not an image: as for an upload
        ("endless", "source_too_large"),  # chunked past the 3 MB limit
        ("declared", "source_too_large"),  # Content-Length past it
        ("slow", "source_timeout"),  # a byte every 100 ms; the stack's deadline is 2 s
        ("loop", "source_unreachable"),  # more than 5 redirects
    ],
)
async def test_a_url_source_that_cannot_be_used_fails_the_job_with_its_reason(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver, origin: Origin, route: str, code: str
) -> None:
    path = f"/{tenant.name}/{route}"
    {
        "missing": lambda: None,
        "broken": lambda: origin.serve(path, b"oops", status=500),
        "text": lambda: origin.serve(path, b"<html>not an image</html>", content_type="image/png"),
        "endless": lambda: origin.stream(path, b"\xff\xd8\xff" + b"\0" * 65533),
        "declared": lambda: origin.serve(path, JPEG, content_length=str(10**9)),
        "slow": lambda: origin.stream(path, b"\xff", interval=0.1),
        "loop": lambda: origin.redirect(path, path),
    }[route]()
    hook = f"/sources/{tenant.name}/{route}"
    job = await create(tenant, spec({"url": origin.url(path)}, receiver.url(hook)))
    final = await wait_status(tenant, job["id"], TERMINAL)
    assert final["status"] == "failed" and final["error"]["code"] == code, final["error"]
    assert final["attempts"] == 1  # none of these is retried
    (delivery,) = receiver.wait(hook, 1, timeout=30)
    assert b'"job.failed"' in delivery.body and code.encode() in delivery.body
    if route == "endless":
        assert origin.sent[path] < 3 * 1024 * 1024 + 16 * 1024 * 1024  # stopped at the limit, not read to the end


async def test_a_job_source_reruns_a_stored_original_and_survives_its_deletion(
    tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    url = origin.serve(f"/{tenant.name}/orig.jpg", JPEG)
    first = await wait_status(tenant, (await create(tenant, spec({"url": url})))["id"], TERMINAL)
    assert first["status"] == "succeeded", first["error"]

    # A backfill: a new spec on the stored original, without fetching it again.
    second = await create(tenant, spec({"job": first["id"]}, width=100))
    second = await wait_status(tenant, second["id"], TERMINAL)
    assert second["status"] == "succeeded", second["error"]
    assert second["source"]["bytes"] == len(JPEG)
    image = await variant_image(second)
    assert max(image.width, image.height) == 100
    assert origin.hits[f"/{tenant.name}/orig.jpg"] == 1

    # The original was copied: deleting the first job leaves the second one's in place.
    assert (await tenant.http.delete(f"/v1/jobs/{first['id']}")).status_code == 204
    r = await tenant.http.post("/v1/jobs", json=spec({"job": first["id"]}))
    assert r.status_code == 404 and r.json()["code"] == "source_not_found", r.text
    assert r.json()["errors"] == [{"path": "$.source.job", "message": r.json()["errors"][0]["message"]}]
    third = await wait_status(tenant, (await create(tenant, spec({"job": second["id"]}, width=50)))["id"], TERMINAL)
    assert third["status"] == "succeeded", third["error"]


async def test_a_job_source_must_be_yours_and_hold_its_original(
    stack: Stack, api: ApiServer, tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    url = origin.serve(f"/{tenant.name}/mine.png", PNG)
    mine = await wait_status(tenant, (await create(tenant, spec({"url": url})))["id"], TERMINAL)
    other = await make_tenant(stack, api)
    try:
        r = await other.http.post("/v1/jobs", json=spec({"job": mine["id"]}))
        assert r.status_code == 404 and r.json()["code"] == "source_not_found", r.text
    finally:
        await other.http.aclose()

    # A failed job's original is discarded; a job never started never had one stored.
    failed = await wait_status(tenant, (await create(tenant, spec({"url": origin.url("/none")})))["id"], TERMINAL)
    assert failed["status"] == "failed"
    unstarted = (await tenant.http.post("/v1/jobs", json={k: v for k, v in spec({}).items() if k != "source"})).json()
    for job_id in (failed["id"], unstarted["id"], "6f0c1a2b-0000-4000-8000-000000000000"):
        r = await tenant.http.post("/v1/jobs", json=spec({"job": job_id}))
        assert r.status_code == 404 and r.json()["code"] == "source_not_found", (job_id, r.text)
    for bad in ({"job": "nope"}, {}, {"url": url, "job": mine["id"]}):
        r = await tenant.http.post("/v1/jobs", json=spec(bad))
        assert r.status_code == 422 and r.json()["errors"][0]["path"].startswith("$.source"), r.text


async def test_a_template_job_takes_a_source(
    stack: Stack, api: ApiServer, tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    """Backfill after a template changes: the new version run on the original an earlier job
    stored, by a presets-only key (which still may not send a spec of its own)."""
    from tests.integration.test_templates import scoped_key

    body = {"name": "card", "spec": {"version": 1, "pipeline": [{"id": "c", "action": "resize", "width": 64}]}}
    assert (await tenant.http.post("/v1/templates", json=body)).status_code == 201
    url = origin.serve(f"/{tenant.name}/t.png", PNG)
    first = await wait_status(
        tenant, (await create(tenant, {"template": "card", "source": {"url": url}}))["id"], TERMINAL
    )
    assert first["status"] == "succeeded", first["error"]
    body["spec"]["pipeline"][0]["width"] = 32
    assert (await tenant.http.post("/v1/templates", json=body)).status_code == 201
    async with scoped_key(stack, api, tenant, presets_only=True) as presets_only:
        r = await presets_only.post("/v1/jobs", json={"template": "card@2", "source": {"job": first["id"]}})
        assert r.status_code == 201 and r.json()["status"] != "created", r.text
        refused = await presets_only.post("/v1/jobs", json=spec({"job": first["id"]}))
        assert refused.status_code == 403 and refused.json()["code"] == "presets_only"
    backfill = await wait_status(tenant, r.json()["id"], TERMINAL)
    assert backfill["status"] == "succeeded" and backfill["template"] == {"name": "card", "version": 2}
    assert (await variant_image(backfill)).width == 32


async def test_an_overloaded_origin_is_tried_again(tenant: Tenant, worker: WorkerProcess, origin: Origin) -> None:
    path = f"/{tenant.name}/flaky.png"
    job = await create(tenant, spec({"url": origin.serve(path, PNG, fail_first=1)}))  # 503, then the image
    final = await wait_status(tenant, job["id"], TERMINAL)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final["error"]
    assert origin.hits[path] == 2


async def test_a_busy_client_gets_429_and_the_job_waits_created(
    stack: Stack, tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    """Created and queued in one call; when the client is at its cap of active jobs the job stays
    `created` (no upload to wait for) and the same request again (same Idempotency-Key) starts it."""
    cli_json(stack, "clients", "limits", tenant.name, "--max-concurrent-jobs-per-client", "1")
    slow = origin.stream(f"/{tenant.name}/slow", b"\xff", interval=0.1)  # holds the slot for the 2 s deadline
    first = await create(tenant, spec({"url": slow}))
    body, key = spec({"url": origin.serve(f"/{tenant.name}/next.png", PNG)}), {"Idempotency-Key": "next"}
    r = await tenant.http.post("/v1/jobs", json=body, headers=key)
    assert r.status_code == 429 and r.json()["code"] == "too_many_active_jobs", r.text
    waiting = (await tenant.http.get("/v1/jobs", params={"status": "created"})).json()["jobs"]
    assert len(waiting) == 1 and waiting[0]["upload"] is None
    assert (await wait_status(tenant, first["id"], TERMINAL))["status"] == "failed"
    r = await tenant.http.post("/v1/jobs", json=body, headers=key)
    assert r.status_code == 200 and r.json()["id"] == waiting[0]["id"] and r.json()["status"] != "created", r.text
    assert (await wait_status(tenant, waiting[0]["id"], TERMINAL))["status"] == "succeeded"


async def test_an_inline_upload_cannot_also_name_a_source(tenant: Tenant, origin: Origin) -> None:
    body = json.dumps(spec({"url": origin.url("/x.png")}))
    r = await tenant.http.post("/v1/uploads", files={"file": ("a.png", PNG, "image/png")}, data={"spec": body})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "$.source", r.text


async def test_credentials_in_a_source_url_stay_out_of_the_logs(
    stack: Stack, tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    url = origin.serve(f"/{tenant.name}/auth.png", PNG).replace("http://", "http://reader:hunter22@")
    final = await wait_status(tenant, (await create(tenant, spec({"url": url + "?token=t0k3n"})))["id"], TERMINAL)
    assert final["status"] == "succeeded", final["error"]
    log = (stack.workdir / "worker.log").read_text()
    assert f"/{tenant.name}/auth.png" in log  # httpx logs the request...
    assert "hunter22" not in log and "t0k3n" not in log  # ...without the password or the token


async def test_the_sdk_submits_a_url_source_without_a_file(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    import asyncio

    from pixelflow_client import AsyncClient, Client

    url = origin.serve(f"/{tenant.name}/sdk.jpg", JPEG)

    def run() -> None:
        with Client(api.url, tenant.key) as pf:
            job = pf.submit(spec({"url": url}), timeout=60)
            assert job.status == "succeeded" and job.source.bytes == len(JPEG)

    await asyncio.to_thread(run)
    async with AsyncClient(api.url, tenant.key) as pf:
        again = await pf.submit(spec({"url": url}, width=64), timeout=60)
        assert again.status == "succeeded"
        backfill = await pf.submit(spec({"job": str(again.id)}, width=32), timeout=60)
        assert backfill.variants[0].width == 32
        with pytest.raises(ValueError, match="pass the original"):
            await pf.submit({k: v for k, v in spec({}).items() if k != "source"})


async def test_pixelflow_submit_url(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, origin: Origin, tmp_path
) -> None:
    """`pixelflow submit SPEC --url URL -o OUT`: the service fetches each URL; outputs under the
    URL's file name's stem, beside uploaded files', and collisions refused before any job."""
    from tests.integration.test_cli_remote import env_for, pixelflow, write_spec

    doc = spec({})
    del doc["source"]
    spec_file = write_spec(tmp_path / "spec.json", doc)
    beach = origin.serve(f"/{tenant.name}/photos/beach.jpg", JPEG)
    missing = origin.url(f"/{tenant.name}/photos/gone.png")
    (tmp_path / "local.png").write_bytes(PNG)
    out = tmp_path / "out"
    env = env_for(api.url, tenant.key)
    args = ["submit", str(spec_file), str(tmp_path / "local.png"), "--url", beach, "--url", missing, "-o", str(out)]
    result = pixelflow(env, *args, "--json")
    assert result.returncode == 1, result.stderr
    by_input = {r["input"]: r for r in json.loads(result.stdout)["results"]}
    assert by_input[beach]["status"] == "succeeded"
    assert by_input[beach]["written"][0]["path"] == str(out / "beach" / "small.webp")
    assert (out / "beach" / "small.webp").is_file() and (out / "local" / "small.webp").is_file()
    assert by_input[missing]["error"]["code"] == "source_unreachable"

    clash = pixelflow(env, "submit", str(spec_file), "--url", beach, "--url", beach + "?v=2", "-o", str(out))
    assert clash.returncode == 2 and "would both write beach/" in clash.stderr
    assert pixelflow(env, "submit", str(spec_file), "-o", str(out)).returncode == 2


async def test_the_dry_run_of_a_backfill_plans_for_the_stored_original(
    stack: Stack, api: ApiServer, tenant: Tenant, worker: WorkerProcess, origin: Origin
) -> None:
    url = origin.serve(f"/{tenant.name}/dry.jpg", JPEG)
    described = {**spec({"url": url}), "info": {"placeholders": ["blurhash"]}}
    first = await wait_status(tenant, (await create(tenant, described))["id"], TERMINAL)
    assert first["status"] == "succeeded", first["error"]

    async def dry_run(body: dict) -> httpx.Response:
        return await tenant.http.post("/v1/specs/validate", json={"spec": body})

    # sizes and cost for the original the backfill will read, and its description when asked
    r = await dry_run({**spec({"job": first["id"]}, width=300), "info": {}})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["source"] == {"width": 800, "height": 600, "format": "jpeg", "frames": 1}
    assert [(v["width"], v["height"]) for v in plan["variants"]] == [(300, 225)] and plan["cost"] > 0
    assert plan["info"] == first["info"] and plan["info"]["blurhash"]
    assert (await dry_run(spec({"job": first["id"]}))).json()["info"] is None

    # the job it names must exist for this client, as at creation
    other = await make_tenant(stack, api)
    try:
        r = await other.http.post("/v1/specs/validate", json={"spec": spec({"job": first["id"]})})
        assert r.status_code == 404 and r.json()["code"] == "source_not_found", r.text
    finally:
        await other.http.aclose()
