"""Signed image URLs on real services (docs/delivery.md): signatures, sources of other clients,
format negotiation, the derived cache and its ETags, single flight, the width list and client
hints, template versions, and deletion of a job taking its derived images with it."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import pyvips
from minio import Minio
from pixelflow_client import image_url
from prometheus_client import REGISTRY

from devstack.imagegen import encode, photo
from infra.db import open_pool
from infra.policy import ClientPolicy
from infra.repo import ClientRepo, SigningKeyRepo
from infra.repo._sql import fetch_one
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import create_and_upload
from tests.timing import SLACK

pytestmark = pytest.mark.integration

JPEG_SPEC = {"version": 1, "pipeline": [{"id": "small", "action": "resize", "width": 64, "format": "jpeg"}]}


async def _db(stack: Stack, sql: str, *params: object) -> dict | None:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        return await fetch_one(pool, sql, params)
    finally:
        await pool.close()


async def _signing_key(stack: Stack, client_id: uuid.UUID) -> tuple[str, str]:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        key, secret = await SigningKeyRepo(pool).create(client_id)
    finally:
        await pool.close()
    return key.id, secret


async def _policy(stack: Stack, client_id: uuid.UUID, **fields: object) -> None:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        await ClientRepo(pool).set_policy(client_id, ClientPolicy(**fields))  # type: ignore[arg-type]
    finally:
        await pool.close()


async def _render_jobs(stack: Stack, client_id: uuid.UUID) -> int:
    row = await _db(stack, "SELECT count(*) AS n FROM jobs WHERE client_id = %s AND origin = 'url'", client_id)
    assert row is not None
    return row["n"]


async def _source_job(t: Tenant, image: bytes) -> str:
    job = await create_and_upload(t, JPEG_SPEC, image)
    assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    done = await wait_status(t, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    return job["id"]


def _count(result: str) -> float:
    return REGISTRY.get_sample_value("pixelflow_url_requests_total", {"result": result}) or 0.0


def _width(data: bytes) -> int:
    return pyvips.Image.new_from_buffer(data, "").width


@pytest.fixture
async def signer(stack: Stack, api: ApiServer, tenant: Tenant) -> tuple[str, str]:
    return await _signing_key(stack, tenant.client_id)


async def test_signatures_and_sources(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(800, 600, seed=3), ".jpg", Q=85))
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        good = image_url(api.url, kid, secret, job=job_id, width=200, format="jpeg")
        ok = await http.get(good)
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"] == "image/jpeg" and _width(ok.content) == 200

        tampered = good.replace("w:200", "w:201")
        wrong_kid = good.replace(f"/{kid}/", "/sk_000000000000/")
        other_key = await _signing_key(stack, tenant.client_id)
        retired = image_url(api.url, *other_key, job=job_id, width=200, format="jpeg")
        assert (await http.get(retired)).status_code == 200
        pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
        try:
            assert await SigningKeyRepo(pool).retire(tenant.client_id, other_key[0])
        finally:
            await pool.close()
        bodies = []
        for url in (tampered, wrong_kid, retired):
            r = await http.get(url)
            assert r.status_code == 403, (url, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            body = r.json()
            body.pop("instance")
            bodies.append(body)
        assert bodies[0] == bodies[1] == bodies[2] and bodies[0]["code"] == "invalid_signature"

        # client B signs a URL for client A's job: as unknown as a job that never existed
        other = await make_tenant(stack, api)
        b_kid, b_secret = await _signing_key(stack, other.client_id)
        foreign = await http.get(image_url(api.url, b_kid, b_secret, job=job_id, width=200, format="jpeg"))
        unknown = await http.get(image_url(api.url, b_kid, b_secret, job=str(uuid.uuid4()), width=200, format="jpeg"))
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["code"] == unknown.json()["code"] == "source_not_found"
        assert foreign.json()["detail"] == unknown.json()["detail"]
        await other.http.aclose()

        # an invalid option is a 422 naming it; a url: source is not enabled
        bad = await http.get(image_url(api.url, kid, secret, job=job_id, width=200, steps=[("blur", {"sigma": 0})]))
        assert bad.status_code == 422, bad.text
        assert bad.json()["errors"][0]["path"].startswith("$.url.options[1]")
        bmp = await http.get(image_url(api.url, kid, secret, job=job_id, width=200, format="bmp"))
        assert bmp.status_code == 422 and bmp.json()["errors"][0]["path"].startswith("$.url.options[1]")
        nope = await http.get(image_url(api.url, kid, secret, job=job_id, steps=[("warp", {"x": 1})]))
        assert nope.status_code == 422 and nope.json()["errors"][0]["path"].startswith("$.url.options[0]")
        # what only this image makes impossible: the render job's error, with its status, never a 500
        outside = [("crop", {"left": 5000, "top": 0, "width": 10, "height": 10})]
        crop = await http.get(image_url(api.url, kid, secret, job=job_id, steps=outside, format="jpeg"))
        assert crop.status_code == 422, crop.text
        assert crop.headers["content-type"].startswith("application/problem+json")
        again = await http.get(image_url(api.url, kid, secret, job=job_id, steps=outside, format="jpeg"))
        assert again.json() == crop.json()  # the failure is kept a while, not rendered again
        url_source = await http.get(image_url(api.url, kid, secret, url="https://example.com/a.jpg", width=200))
        assert url_source.status_code == 422 and url_source.json()["code"] == "url_sources_not_enabled"


async def test_negotiation_cache_and_etags(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(900, 600, seed=5), ".jpg", Q=85))
    alpha_job = await _source_job(tenant, encode(photo(400, 300, seed=6, alpha=True), ".png"))
    url = image_url(api.url, kid, secret, job=job_id, width=300)  # f:auto is the default
    async with httpx.AsyncClient(timeout=30) as http:
        for accept, mime in (
            ("image/avif,image/webp,*/*", "image/avif"),
            ("image/webp,*/*", "image/webp"),
            ("*/*", "image/jpeg"),
        ):
            r = await http.get(url, headers={"Accept": accept})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == mime
            assert "Accept" in r.headers["vary"]
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert int(r.headers["content-length"]) == len(r.content)
            assert _width(r.content) == 300
        alpha = await http.get(image_url(api.url, kid, secret, job=alpha_job, width=100), headers={"Accept": "*/*"})
        assert alpha.status_code == 200 and alpha.headers["content-type"] == "image/png"
        assert pyvips.Image.new_from_buffer(alpha.content, "").hasalpha()

        # the second request is a hit: same ETag, no new render job, no engine work
        first = await http.get(url, headers={"Accept": "image/webp"})
        jobs, hits, misses = await _render_jobs(stack, tenant.client_id), _count("hit"), _count("miss")
        again = await http.get(url, headers={"Accept": "image/webp"})
        assert again.status_code == 200 and again.headers["etag"] == first.headers["etag"]
        assert again.content == first.content
        assert await _render_jobs(stack, tenant.client_id) == jobs
        assert _count("hit") == hits + 1 and _count("miss") == misses
        etag = first.headers["etag"]
        assert etag.startswith('"') and len(etag) == 66
        cached = await http.get(url, headers={"Accept": "image/webp", "If-None-Match": etag})
        assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag


async def test_concurrent_requests_render_once(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    """24 requests at once, half to a second API with its own dependencies (as another process
    would be): one render job between them all."""
    from devstack.backing_services import free_port

    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(1200, 800, seed=7), ".jpg", Q=85))
    before = await _render_jobs(stack, tenant.client_id)
    second = ApiServer(stack.settings(), free_port()).start()
    try:
        urls = [
            image_url(base, kid, secret, job=job_id, width=480, format="webp", quality=70)
            for base in (api.url, second.url)
        ]
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32)) as http:
            answers = await asyncio.gather(*(http.get(urls[i % 2]) for i in range(24)))
    finally:
        second.stop()
    assert [r.status_code for r in answers] == [200] * 24, [r.text for r in answers if r.status_code != 200]
    assert len({r.headers["etag"] for r in answers}) == 1
    assert len({r.content for r in answers}) == 1
    assert await _render_jobs(stack, tenant.client_id) == before + 1
    listed = (await tenant.http.get("/v1/jobs")).json()["jobs"]
    assert {j["id"] for j in listed} == {job_id}  # render jobs stay out of the listing


async def test_width_list_and_client_hints(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(1400, 900, seed=9), ".jpg", Q=85))
    await _policy(stack, tenant.client_id, url_widths="320,640,1024")
    async with httpx.AsyncClient(timeout=30) as http:
        outside = await http.get(image_url(api.url, kid, secret, job=job_id, width=500, format="jpeg"))
        assert outside.status_code == 422, outside.text
        assert outside.json()["code"] == "width_not_allowed"
        assert outside.json()["errors"][0]["path"] == "$.url.options[0]"
        listed = await http.get(image_url(api.url, kid, secret, job=job_id, width=320, format="jpeg"))
        assert listed.status_code == 200 and _width(listed.content) == 320
        hinted = await http.get(
            image_url(api.url, kid, secret, job=job_id, format="jpeg"), headers={"Sec-CH-Width": "500"}
        )
        assert hinted.status_code == 200, hinted.text
        assert _width(hinted.content) == 640  # snapped up to the list
        assert "Sec-CH-Width" in hinted.headers["vary"]
        assert hinted.headers["accept-ch"] == "Sec-CH-Width, Sec-CH-DPR, Width"
    await _policy(stack, tenant.client_id, url_templates_only=True)
    async with httpx.AsyncClient(timeout=30) as http:
        shorthand = await http.get(image_url(api.url, kid, secret, job=job_id, width=320, format="jpeg"))
        assert shorthand.status_code == 403 and shorthand.json()["code"] == "url_templates_only"


async def test_template_versions_are_pinned(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(1000, 700, seed=12), ".jpg", Q=85))
    for width in (100, 150, 200, 250):  # versions 1 to 4
        spec = {"version": 1, "pipeline": [{"id": "hero", "action": "resize", "width": width, "format": "jpeg"}]}
        saved = await tenant.http.post("/v1/templates", json={"name": "hero", "spec": spec})
        assert saved.status_code in (200, 201), saved.text
    async with httpx.AsyncClient(timeout=30) as http:
        v3 = await http.get(image_url(api.url, kid, secret, job=job_id, template="hero@3"))
        v4 = await http.get(image_url(api.url, kid, secret, job=job_id, template="hero@4"))
        latest = await http.get(image_url(api.url, kid, secret, job=job_id, template="hero"))
        assert v3.status_code == v4.status_code == latest.status_code == 200, (v3.text, v4.text)
        assert (_width(v3.content), _width(v4.content)) == (200, 250)
        assert v3.headers["etag"] != v4.headers["etag"] and latest.headers["etag"] == v4.headers["etag"]
        spec = {"version": 1, "pipeline": [{"id": "hero", "action": "resize", "width": 300, "format": "jpeg"}]}
        assert (await tenant.http.post("/v1/templates", json={"name": "hero", "spec": spec})).status_code in (200, 201)
        pinned = await http.get(image_url(api.url, kid, secret, job=job_id, template="hero@3"))
        assert pinned.headers["etag"] == v3.headers["etag"] and _width(pinned.content) == 200
        no_width = await http.get(image_url(api.url, kid, secret, job=job_id, template="hero@3", width=320))
        assert no_width.status_code == 422 and no_width.json()["errors"][0]["path"] == "$.url.options[1]"
        missing = await http.get(image_url(api.url, kid, secret, job=job_id, template="nope@1"))
        assert missing.status_code == 404 and missing.json()["code"] == "template_not_found"


async def test_deleting_the_job_deletes_its_derived_images(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(800, 600, seed=14), ".jpg", Q=85))
    url = image_url(api.url, kid, secret, job=job_id, width=120, format="webp")
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(url)).status_code == 200
        s3 = Minio(stack.s3.endpoint, access_key=stack.s3.access_key, secret_key=stack.s3.secret_key, secure=False)
        prefix = f"derived/{tenant.client_id}/job/{job_id}/"
        bucket = stack.env["PIXELFLOW_S3_BUCKET"]
        assert len(list(s3.list_objects(bucket, prefix=prefix, recursive=True))) == 1
        assert (await tenant.http.delete(f"/v1/jobs/{job_id}")).status_code == 204
        assert list(s3.list_objects(bucket, prefix=prefix, recursive=True)) == []
        gone = await http.get(url)
        assert gone.status_code == 404 and gone.json()["code"] == "source_not_found"


async def test_a_slow_render_answers_at_the_deadline(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    """Past PIXELFLOW_URL_DEADLINE_SECONDS the request gets a 504 with Retry-After at the deadline
    (not when the render ends), while the render goes on; a cheap image on the same API is served at once meanwhile."""
    from devstack.backing_services import free_port

    kid, secret = signer
    job_id = await _source_job(tenant, encode(photo(1600, 1200, seed=15), ".jpg", Q=90))
    short = ApiServer(stack.settings(url_deadline_seconds=1), free_port()).start()
    try:
        slow = image_url(
            short.url, kid, secret, job=job_id, width=4000, format="avif", quality=90,
            steps=[("blur", {"sigma": 40})],
        )  # fmt: skip
        cheap = image_url(short.url, kid, secret, job=job_id, width=64, format="jpeg")
        async with httpx.AsyncClient(timeout=30) as http:
            began = asyncio.get_running_loop().time()
            r = await http.get(slow)
            took = asyncio.get_running_loop().time() - began
            assert r.status_code == 504, r.text
            assert r.json()["code"] == "render_timeout" and r.headers["retry-after"]
            assert 1.0 <= took < 1.0 + SLACK, took  # at the deadline, with room for a loaded machine
            ok = await http.get(cheap)
            assert ok.status_code == 200, ok.text
    finally:
        short.stop()


async def test_signing_keys_and_url_policy_from_the_cli(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    import json

    from tests.integration.test_cli_admin import cli

    made = cli(stack, "clients", "signing-keys", "create", tenant.name, "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["kid"].startswith("sk_") and len(key["secret"]) >= 32
    listed = json.loads(cli(stack, "clients", "signing-keys", "list", tenant.name, "--json").stdout)
    assert [k["kid"] for k in listed] == [key["kid"]] and listed[0]["retired_at"] is None
    assert "secret" not in listed[0]
    assert cli(stack, "clients", "signing-keys", "retire", tenant.name, key["kid"]).returncode == 0
    again = cli(stack, "clients", "signing-keys", "retire", tenant.name, key["kid"])
    assert again.returncode == 1 and "no live signing key" in again.stderr

    limits = cli(stack, "clients", "limits", tenant.name, "--url-widths", "640,320", "--url-templates-only", "yes")
    assert limits.returncode == 0, limits.stderr
    shown = json.loads(cli(stack, "clients", "limits", tenant.name, "--json").stdout)
    assert shown["url_widths"] == "640,320" and shown["url_templates_only"] is True
    assert {"url_widths", "url_templates_only"} <= set(shown["overridden"])
    bad = cli(stack, "clients", "limits", tenant.name, "--url-widths", "320,wide")
    assert bad.returncode == 1 and "not a width" in bad.stderr
    reset = cli(stack, "clients", "limits", tenant.name, "--url-templates-only", "no", "--url-widths", "", "--json")
    assert json.loads(reset.stdout)["url_templates_only"] is False


async def test_url_sources_on_allowed_origins(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    from devstack.origin import Origin

    kid, secret = signer
    with Origin() as origin:
        photo_url = origin.serve("/photos/beach.jpg", encode(photo(900, 600, seed=21), ".jpg", Q=85))
        logo_url = origin.serve("/logo.png", encode(photo(200, 100, seed=22, alpha=True), ".png"))
        await _policy(stack, tenant.client_id, url_source_origins=origin.url("").rstrip("/"))
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.get(image_url(api.url, kid, secret, url=photo_url, width=300), headers={"Accept": "*/*"})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "image/jpeg" and _width(r.content) == 300
            again = await http.get(image_url(api.url, kid, secret, url=photo_url, width=300), headers={"Accept": "*/*"})
            assert again.headers["etag"] == r.headers["etag"] and again.content == r.content
            png = await http.get(image_url(api.url, kid, secret, url=logo_url, width=50))
            assert png.status_code == 200 and png.headers["content-type"] == "image/png", png.text
            elsewhere = await http.get(image_url(api.url, kid, secret, url="https://example.com/a.jpg", width=300))
            assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "url_source_not_allowed"
    s3 = Minio(stack.s3.endpoint, access_key=stack.s3.access_key, secret_key=stack.s3.secret_key, secure=False)
    stored = [o.object_name for o in s3.list_objects(stack.env["PIXELFLOW_S3_BUCKET"], recursive=True)]
    assert not [k for k in stored if k.startswith(f"sources/{tenant.client_id}/")]  # fetched originals not kept
    assert len([k for k in stored if k.startswith(f"derived/{tenant.client_id}/url/")]) == 2


async def test_asset_sources_and_replacement(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    """An asset (its key with a slash, percent-encoded in the URL) is a source; replacing it is a
    new source (a new ETag) whose first render deletes what the old one rendered, as does asking
    for a new upload URL; another client's asset of the same key is unknown."""
    kid, secret = signer
    s3 = Minio(stack.s3.endpoint, access_key=stack.s3.access_key, secret_key=stack.s3.secret_key, secure=False)
    prefix = f"derived/{tenant.client_id}/asset/home%2Fhero.jpg/"

    def derived() -> set[str]:
        found = s3.list_objects(stack.env["PIXELFLOW_S3_BUCKET"], prefix=prefix, recursive=True)
        return {o.object_name.removeprefix(prefix) for o in found} - {"_version"}

    async def upload_url() -> str:
        asset = await tenant.http.post("/v1/assets", json={"key": "home/hero.jpg"})
        assert asset.status_code == 201, asset.text
        return asset.json()["upload"]["put"]["url"]

    async def put(url: str, data: bytes) -> None:
        async with httpx.AsyncClient() as plain:
            assert (await plain.put(url, content=data)).status_code == 200

    put_url = await upload_url()
    await put(put_url, encode(photo(800, 500, seed=31), ".jpg", Q=85))
    url = image_url(api.url, kid, secret, asset="home/hero.jpg", width=200, format="webp")
    assert "asset:home%2Fhero.jpg" in url
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.get(url)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "image/webp" and _width(first.content) == 200
        wide = await http.get(image_url(api.url, kid, secret, asset="home/hero.jpg", width=300, format="webp"))
        assert wide.status_code == 200, wide.text
        old = derived()
        assert len(old) == 2

        # the same presigned URL again (the API never hears of it): the next render sees the new ETag
        await put(put_url, encode(photo(800, 500, seed=32), ".jpg", Q=85))
        replaced = await http.get(url)
        assert replaced.status_code == 200 and replaced.headers["etag"] != first.headers["etag"]
        assert replaced.content != first.content and _width(replaced.content) == 200
        assert derived() == {f"{replaced.headers['etag'].strip(chr(34))}.webp"}  # the old versions' are gone
        assert (await http.get(url)).content == replaced.content  # and the new one is a hit

        # asking to upload again drops them at once
        await put(await upload_url(), encode(photo(800, 500, seed=33), ".jpg", Q=85))
        assert derived() == set()
        third = await http.get(url)
        assert third.status_code == 200 and third.headers["etag"] not in (
            first.headers["etag"],
            replaced.headers["etag"],
        )

        other = await make_tenant(stack, api)
        b_kid, b_secret = await _signing_key(stack, other.client_id)
        foreign = await http.get(image_url(api.url, b_kid, b_secret, asset="home/hero.jpg", width=200))
        assert foreign.status_code == 404 and foreign.json()["code"] == "source_not_found"
        await other.http.aclose()


async def test_usage_counts_renders_hits_and_bytes_per_client(
    stack: Stack, api: ApiServer, tenant: Tenant, signer: tuple[str, str], worker: WorkerProcess
) -> None:
    """N requests for one URL: one render and N-1 hits, every byte sent counted, a 304 a hit of 0
    bytes; hits are added to usage when the API process flushes (here: as it stops, then every
    0.2 s), never per request; another client's counts stay its own."""
    from devstack.backing_services import free_port

    kid, secret = signer
    other = await make_tenant(stack, api)
    b_kid, b_secret = await _signing_key(stack, other.client_id)
    a_job = await _source_job(tenant, encode(photo(900, 600, seed=41), ".jpg", Q=85))
    b_job = await _source_job(other, encode(photo(640, 480, seed=42), ".jpg", Q=85))
    a_url = image_url(api.url, kid, secret, job=a_job, width=160, format="webp")
    b_url = image_url(api.url, b_kid, b_secret, job=b_job, width=120, format="jpeg")

    async def usage(t: Tenant) -> dict:
        r = await t.http.get("/v1/usage")
        assert r.status_code == 200, r.text
        return r.json()["total"]

    quiet = ApiServer(stack.settings(url_usage_flush_seconds=3600), free_port()).start()  # flushes as it stops
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            a = [await http.get(a_url.replace(api.url, quiet.url)) for _ in range(5)]
            assert [r.status_code for r in a] == [200] * 5 and len({r.content for r in a}) == 1
            etag = a[0].headers["etag"]
            not_modified = await http.get(a_url.replace(api.url, quiet.url), headers={"If-None-Match": etag})
            assert not_modified.status_code == 304
            b = [await http.get(b_url.replace(api.url, quiet.url)) for _ in range(3)]
            assert [r.status_code for r in b] == [200] * 3
        assert (await usage(tenant))["url_cache_hits"] == 0  # counted in the process, not written yet
    finally:
        quiet.stop()

    mine, theirs = await usage(tenant), await usage(other)
    assert (mine["url_renders"], mine["url_cache_hits"], mine["url_bytes_served"]) == (1, 5, 5 * len(a[0].content))
    assert mine["jobs"] == 2  # the source job and the render (a job too)
    assert mine["url_render_source_megapixels"] == 0.54 and mine["url_render_cpu_seconds"] > 0
    assert (theirs["url_renders"], theirs["url_cache_hits"], theirs["url_bytes_served"]) == (
        1, 2, 3 * len(b[0].content))  # fmt: skip

    brisk = ApiServer(stack.settings(url_usage_flush_seconds=0.2), free_port()).start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(b_url.replace(api.url, brisk.url))).status_code == 200
        deadline = asyncio.get_running_loop().time() + 0.2 + SLACK
        while (now := await usage(other))["url_cache_hits"] < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert (now["url_cache_hits"], now["url_bytes_served"]) == (3, 4 * len(b[0].content))
        assert (await usage(tenant))["url_cache_hits"] == 5
    finally:
        brisk.stop()
    await other.http.aclose()


async def test_the_dashboard_manages_signing_keys_and_builds_urls(api: ApiServer, worker: WorkerProcess) -> None:
    from tests.security.test_dashboard_auth import sign_up

    browser = sign_up(api.url)
    http, headers = browser.http, {"X-CSRF-Token": browser.csrf}
    page = http.get("/dashboard/images")
    assert page.status_code == 200 and 'data-page="images"' in page.text
    assert http.post("/dashboard/api/image-url", json={"job": str(uuid.uuid4())}, headers=headers).json()["code"] == (
        "no_signing_key"
    )
    made = http.post("/dashboard/api/signing-keys", headers=headers)
    assert made.status_code == 201, made.text
    kid = made.json()["record"]["kid"]
    assert [k["kid"] for k in http.get("/dashboard/api/signing-keys").json()] == [kid]

    created = http.post("/v1/jobs", json=JPEG_SPEC, headers=headers).json()
    put = created["upload"]["put"]["url"]
    assert httpx.put(put, content=encode(photo(600, 400, seed=41), ".jpg", Q=85)).status_code == 200
    assert http.post(f"/v1/jobs/{created['id']}/start", headers=headers).status_code == 202
    for _ in range(300):
        if http.get(f"/v1/jobs/{created['id']}").json()["status"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    built = http.post(
        "/dashboard/api/image-url", json={"job": created["id"], "width": 150, "format": "webp"}, headers=headers
    )
    assert built.status_code == 200, built.text
    assert built.json()["kid"] == kid and built.json()["url"].startswith("/img/")
    image = httpx.get(api.url + built.json()["url"], timeout=30)
    assert image.status_code == 200, image.text
    assert image.headers["content-type"] == "image/webp" and _width(image.content) == 150

    retired = http.post(f"/dashboard/api/signing-keys/{kid}/retire", headers=headers)
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    assert httpx.get(api.url + built.json()["url"], timeout=30).status_code == 403
    http.close()
