"""Contract tests written from docs/api.md and docs/OPERATIONS.md (issue 23's outside conformance
pass): what the documents promise a client, checked on the real services."""

from __future__ import annotations

import httpx
import pytest

from devstack.imagegen import encode, photo
from tests.integration.conftest import Stack, Tenant, WorkerProcess, wait_status
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration


def _form_post(post: dict, data: bytes) -> httpx.Response:
    """The browser form exactly as returned: every field as it is, then the file, last (S3 reads
    the fields before the file and ignores any after it)."""
    files = [
        *((name, (None, value)) for name, value in post["fields"].items()),
        ("file", ("a.jpg", data, "image/jpeg")),
    ]
    return httpx.post(post["url"], files=files, timeout=30)


async def test_the_presigned_post_form_works_exactly_as_returned(tenant: Tenant, stack: Stack) -> None:
    created = await tenant.http.post("/v1/jobs", json=spec())
    assert created.status_code == 201, created.text
    job = created.json()
    upload = job["upload"]
    post = upload["post"]
    assert post["method"] == "POST" and post["fields"]["key"] and post["url"].startswith("http")
    assert upload["max_bytes"] == int(stack.env["PIXELFLOW_MAX_SOURCE_BYTES"])

    # over the size limit: the policy's content-length-range refuses it, nothing is stored
    too_big = b"\xff\xd8\xff" + b"\0" * upload["max_bytes"]
    refused = _form_post(post, too_big)
    assert refused.status_code == 400 and b"EntityTooLarge" in refused.content, refused.text[:300]
    started = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert (started.status_code, started.json()["code"]) == (409, "upload_missing"), started.text  # nothing landed

    landed = _form_post(post, encode(photo(320, 240, seed=3), ".jpg", Q=85))
    assert landed.status_code in (200, 201, 204), landed.text[:300]
    started = await tenant.http.post(f"/v1/jobs/{job['id']}/start")
    assert started.status_code == 202, started.text
    assert started.json()["status"] in ("queued", "processing", "succeeded")


def _comparable(job: dict) -> dict:
    """A job view without what is signed per request (presigned URLs' query strings)."""
    variants = [{**v, "url": v["url"] and v["url"].split("?")[0]} for v in job["variants"]]
    return {**job, "variants": variants}


async def test_the_job_list_shows_finished_jobs_as_the_job_does(tenant: Tenant, worker: WorkerProcess) -> None:
    """docs/api.md: `GET /v1/jobs` lists "your jobs"; each entry is the job as `GET /v1/jobs/{id}` shows it
    (status, timestamps, error code/message, metadata, source, variants...), for succeeded,
    failed and canceled jobs alike."""
    ok = await create_and_upload(tenant, spec(), encode(photo(320, 240, seed=5), ".jpg", Q=85))
    assert (await tenant.http.post(f"/v1/jobs/{ok['id']}/start")).status_code == 202
    bad = await create_and_upload(tenant, spec(), b"this is not an image, whatever its name says" * 4)
    refused = await tenant.http.post(f"/v1/jobs/{bad['id']}/start")
    assert refused.status_code == 415, refused.text
    canceled = (await tenant.http.post("/v1/jobs", json=spec())).json()
    assert (await tenant.http.post(f"/v1/jobs/{canceled['id']}/cancel")).status_code == 200
    await wait_status(tenant, ok["id"], {"succeeded"})

    listed = {j["id"]: j for j in (await tenant.http.get("/v1/jobs")).json()["jobs"]}
    expected = {"succeeded": ok["id"], "failed": bad["id"], "canceled": canceled["id"]}
    for status, job_id in expected.items():
        one = (await tenant.http.get(f"/v1/jobs/{job_id}")).json()
        assert one["status"] == status and one["finished_at"], one
        assert _comparable(listed[job_id]) == _comparable(one), status
        by_status = (await tenant.http.get("/v1/jobs", params={"status": status})).json()["jobs"]
        assert [j["id"] for j in by_status] == [job_id]
    succeeded = listed[ok["id"]]
    assert {v["id"] for v in succeeded["variants"]} == {v["id"] for v in spec()["pipeline"]}
    assert all(v["url"] and v["width"] and v["bytes"] for v in succeeded["variants"])
    assert listed[bad["id"]]["error"]["code"] == "unsupported_format" and listed[bad["id"]]["variants"] == []
    assert listed[canceled["id"]]["error"] is None and listed[canceled["id"]]["variants"] == []
