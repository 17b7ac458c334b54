"""The whole path on real services: create -> PUT to S3 -> start -> worker -> webhook -> download."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import pyvips
from standardwebhooks.webhooks import Webhook

from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import Tenant, WorkerProcess, wait_status

pytestmark = pytest.mark.integration


def spec(webhook: str | None = None, **extra: object) -> dict:
    doc: dict = {
        "version": 1,
        "metadata": {"order": 42, "sku": "abc"},
        "pipeline": [
            {
                "id": "large",
                "steps": [{"op": "resize", "width": 640, "fit": "inside"}],
                "format": "webp",
                "quality": 80,
            },
            {"id": "thumb", "action": "resize", "width": 120, "height": 120, "format": "jpeg"},
            {"id": "gray", "from": "large", "action": "grayscale", "format": "png"},
        ],
        **extra,
    }
    if webhook:
        doc["webhook_url"] = webhook
    return doc


async def create_and_upload(t: Tenant, body: dict, data: bytes) -> dict:
    created = await t.http.post("/v1/jobs", json=body)
    for _ in range(3):
        # A starved machine (load 15 on 2 cores) can time out a backing service's connect, which the
        # API answers as designed, 503 `unavailable` + retry shortly; a client then retries. Only
        # that answer is retried, with a new request (no Idempotency-Key: it was not created).
        if created.status_code != 503 or created.json().get("code") != "unavailable":
            break
        await asyncio.sleep(1)
        created = await t.http.post("/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    put = job["upload"]["put"]
    async with httpx.AsyncClient() as plain:  # a plain client: no API key goes to S3
        r = await plain.put(put["url"], content=data, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    return job


async def test_full_flow_with_signed_webhook(tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver) -> None:
    source = encode(photo(1600, 1200, seed=11), ".jpg", Q=85)
    job = await create_and_upload(tenant, spec(receiver.url(f"/flow/{tenant.name}")), source)
    assert job["status"] == "created"
    assert job["upload"]["max_bytes"] == 3 * 1024 * 1024
    assert job["upload"]["post"]["fields"]["key"].startswith("uploads/")

    started = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert started.status_code == 202, started.text
    assert started.json()["status"] in ("queued", "processing", "succeeded")

    (delivery,) = receiver.wait(f"/flow/{tenant.name}", 1, timeout=60)
    event = Webhook(tenant.secret).verify(delivery.body, delivery.headers)  # third-party verifier
    assert event["type"] == "job.succeeded"
    data = event["data"]
    assert data["job_id"] == job["id"] and data["status"] == "succeeded"
    assert data["metadata"] == {"order": 42, "sku": "abc"}
    sizes = {v["id"]: (v["format"], v["width"], v["height"]) for v in data["variants"]}
    assert sizes == {"large": ("webp", 640, 480), "thumb": ("jpeg", 120, 120), "gray": ("png", 640, 480)}

    final = await wait_status(tenant, job["id"], {"succeeded"})
    assert final["attempts"] == 1
    assert final["source"] == {"bytes": len(source), "format": "jpeg", "width": 1600, "height": 1200}
    async with httpx.AsyncClient() as plain:
        for v in final["variants"]:
            body = (await plain.get(v["url"])).content
            image = pyvips.Image.new_from_buffer(body, "")
            assert (image.width, image.height, len(body)) == (v["width"], v["height"], v["bytes"])
        gray = next(v for v in final["variants"] if v["id"] == "gray")
        assert pyvips.Image.new_from_buffer((await plain.get(gray["url"])).content, "").bands == 1

    redirect = await tenant.http.get(f"/v1/jobs/{job['id']}/variants/thumb", follow_redirects=False)
    assert redirect.status_code == 302
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(redirect.headers["location"])).content[:3] == b"\xff\xd8\xff"

    deliveries = (await tenant.http.get(f"/v1/jobs/{job['id']}/deliveries")).json()
    assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [("job.succeeded", "delivered", 1)]
    assert deliveries[0]["history"][0]["response_status"] == 200


async def test_start_twice_is_harmless_and_queues_once(tenant: Tenant, worker: WorkerProcess) -> None:
    job = await create_and_upload(tenant, spec(), encode(photo(300, 200), ".jpg"))
    first = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    second = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert first.status_code == second.status_code == 202
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded" and final["attempts"] == 1
    again = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert again.status_code == 202 and again.json()["status"] == "succeeded"


async def test_multipart_upload_creates_and_starts(tenant: Tenant, worker: WorkerProcess) -> None:
    source = encode(photo(400, 300), ".png")
    r = await tenant.http.post(
        "/v1/uploads",
        files={"file": ("in.png", source, "image/png")},
        data={"spec": json.dumps(spec())},
    )
    assert r.status_code == 202, r.text
    final = await wait_status(tenant, r.json()["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded"
    assert final["source"]["format"] == "png"
    assert {v["id"] for v in final["variants"]} == {"large", "thumb", "gray"}


async def test_watermark_image_from_the_clients_assets(tenant: Tenant, worker: WorkerProcess) -> None:
    logo = pyvips.Image.black(40, 20, bands=3).new_from_image([0, 255, 0]).copy(interpretation="srgb")
    asset = await tenant.http.post("/v1/assets", json={"key": "brand/logo.png"})
    assert asset.status_code == 201, asset.text
    async with httpx.AsyncClient() as plain:
        r = await plain.put(asset.json()["upload"]["put"]["url"], content=logo.write_to_buffer(".png"))
        assert r.status_code == 200
    mark = {"op": "watermark", "image": "brand/logo.png", "opacity": 1, "gravity": "northwest", "margin": 0}
    body = {
        "version": 1,
        "pipeline": [
            {"id": "marked", "steps": [mark], "format": "png"},
            {"id": "missing", "steps": [{**mark, "image": "nope.png"}], "format": "png"},
        ],
    }
    job = await create_and_upload(tenant, {**body, "pipeline": body["pipeline"][:1]}, encode(photo(200, 100), ".png"))
    await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    async with httpx.AsyncClient() as plain:
        image = pyvips.Image.new_from_buffer((await plain.get(final["variants"][0]["url"])).content, "").copy_memory()
    corner = image.crop(0, 0, 40, 20)
    assert corner[1].avg() > 250 and corner[0].avg() < 5

    assert (await tenant.http.post("/v1/assets", json={"key": "../x.png"})).status_code in (400, 422)


async def test_start_refuses_a_job_whose_watermark_was_never_uploaded(tenant: Tenant, worker: WorkerProcess) -> None:
    """The README walk-through's first mistake: the spec names an asset nobody uploaded. /start says
    which step and how to fix it, and loses nothing: the job stays created, the original stays."""
    mark = {"op": "watermark", "image": "brand/missing.png", "opacity": 1, "gravity": "northwest"}
    body = {
        "version": 1,
        "pipeline": [
            {"id": "plain", "action": "resize", "width": 50, "format": "png"},
            {"id": "marked", "steps": [{"op": "resize", "width": 100}, mark], "format": "png"},
        ],
    }
    job = await create_and_upload(tenant, body, encode(photo(200, 100), ".png"))
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    problem = r.json()
    assert problem["code"] == "asset_not_found"
    assert [e["path"] for e in problem["errors"]] == ["$.pipeline[1].steps[1].image"]
    assert "POST /v1/assets" in problem["errors"][0]["message"]
    assert (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "created"

    logo = pyvips.Image.black(20, 10, bands=3).copy(interpretation="srgb").write_to_buffer(".png")
    asset = (await tenant.http.post("/v1/assets", json={"key": "brand/missing.png"})).json()
    async with httpx.AsyncClient() as plain:
        assert (await plain.put(asset["upload"]["put"]["url"], content=logo)).status_code == 200
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final


async def test_the_engines_report_reaches_the_job_and_its_webhook(
    tenant: Tenant, worker: WorkerProcess, receiver: WebhookReceiver
) -> None:
    """#15 on the real path: an animated GIF with `info`, `max_bytes` and a kept animation; the
    described source, each variant's quality and frames in the job and in the signed webhook."""
    frames = [photo(160, 120, seed=i) for i in range(3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 120)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80, 80, 80])
    body = {
        "version": 1,
        "webhook_url": receiver.url(f"/report/{tenant.name}"),
        "info": {"placeholders": ["blurhash", "thumbhash"]},
        "pipeline": [
            {"id": "anim", "action": "resize", "width": 80, "format": "webp"},
            {"id": "poster", "action": "resize", "width": 80, "format": "jpeg", "max_bytes": 1000},
        ],
    }
    job = await create_and_upload(tenant, body, strip.gifsave_buffer())
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    final = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final["error"]
    (delivery,) = receiver.wait(f"/report/{tenant.name}", 1, timeout=60)
    event = Webhook(tenant.secret).verify(delivery.body, delivery.headers)
    for doc in (final, event["data"]):
        info = doc["info"]
        assert (info["format"], info["width"], info["height"], info["frames"]) == ("gif", 160, 120, 3)
        assert info["blurhash"] and info["thumbhash"] and info["average_color"].startswith("#")
        got = {v["id"]: (v["frames"], v["quality"], v["bytes"]) for v in doc["variants"]}
        assert got["anim"][:2] == (3, 80)
        assert got["poster"][0] == 1 and got["poster"][1] < 80 and got["poster"][2] <= 1000
    plain = await tenant.http.post("/v1/jobs", json={"version": 1, "pipeline": [{"id": "a"}]})
    assert plain.json().get("info") is None  # only when asked


async def test_a_heic_upload_becomes_variants(tenant: Tenant, worker: WorkerProcess) -> None:
    import io

    import pillow_heif
    from PIL import Image

    pil = Image.frombytes("RGB", (640, 480), photo(640, 480, seed=8).write_to_memory())
    heic = io.BytesIO()
    pillow_heif.from_pillow(pil).save(heic, quality=85)
    job = await create_and_upload(tenant, {"version": 1, "pipeline": [{"id": "j", "action": "resize", "width": 320}]},
                                  heic.getvalue())  # fmt: skip
    assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    final = await wait_status(tenant, job["id"], {"succeeded"})
    assert final["source"]["format"] == "heic"
    assert [(v["format"], v["width"], v["height"]) for v in final["variants"]] == [("jpeg", 320, 240)]
