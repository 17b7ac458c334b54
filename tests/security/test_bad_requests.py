"""Item 7: requests a client got wrong are answered with a 4xx that says what is wrong, never
with a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Tenant
from tests.integration.test_flow import spec
from tests.security.conftest import record

pytestmark = pytest.mark.integration

BAD_ASSET_KEYS = [
    "a/./b.png",
    "a//b.png",
    "../x.png",
    "a/../b.png",
    "a/..",
    "/abs.png",
    "a/",
    "a\\b.png",
    "a\x00b.png",
    "a\nb.png",
    "a\x7fb.png",
    "é/b.png",
    "x" * 513,
    "",
]


def nested(depth: int) -> bytes:
    return b'{"version": 1, "metadata": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


async def test_hostile_inputs_get_a_4xx_naming_the_problem(tenant: Tenant) -> None:
    # 1. A zero-byte upload: 422 empty_source, and the job still waits for a real upload.
    created = await tenant.http.post("/v1/jobs", json=spec())
    job = created.json()
    async with httpx.AsyncClient() as plain:
        assert (await plain.put(job["upload"]["put"]["url"], content=b"")).status_code == 200
    r = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert record("zero-byte upload at /start", r.status_code) == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "empty_source"
    assert (await tenant.http.get(f"/v1/jobs/{job['id']}")).json()["status"] == "created"

    # 2. Deeply nested JSON, on every route that parses JSON: refused before it is walked.
    for depth in (100_000, 1_000, 65):
        body = nested(depth)
        for path in ("/v1/jobs", "/v1/specs/validate", "/v1/assets"):
            r = await tenant.http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert record(f"JSON nested {depth} deep at {path}", r.status_code) == 400, (path, depth, r.text[:200])
            assert r.json()["code"] == "json_too_deep"
        files = {"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")}
        r = await tenant.http.post("/v1/uploads", files=files, data={"spec": body.decode()})
        assert record(f"JSON nested {depth} deep in an upload's spec", r.status_code) in (400, 422), r.text[:200]
    # 64 levels are still fine (and rejected by the spec rules, not the parser)
    r = await tenant.http.post("/v1/jobs", content=nested(60), headers={"Content-Type": "application/json"})
    assert record("JSON nested 60 deep", r.status_code) == 422 and r.json()["code"] == "invalid_spec"

    # 3. Asset keys that are not plain relative paths: 422 naming the field, at the asset route
    #    and in a spec's watermark image.
    for key in BAD_ASSET_KEYS:
        r = await tenant.http.post("/v1/assets", json={"key": key})
        assert record(f"asset key {key[:20]!r}", r.status_code) == 422, (key, r.status_code, r.text[:300])
        assert [e["path"] for e in r.json()["errors"]] == ["$.key"], r.text[:300]
        body = spec()
        body["pipeline"][0]["steps"].append({"op": "watermark", "image": key})
        r = await tenant.http.post("/v1/jobs", json=body)
        assert record(f"watermark image {key[:20]!r}", r.status_code) == 422, (key, r.text[:300])
        assert r.json()["code"] == "invalid_spec"
        assert [e["path"] for e in r.json()["errors"]] == ["$.pipeline[0].steps[1].image"], r.text[:300]
    assert (await tenant.http.post("/v1/assets", json={"key": "brand/logo-v2.png"})).status_code == 201
