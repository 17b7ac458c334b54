"""Contract tests written from README.md and docs/OPERATIONS.md (issue 23's outside conformance
pass): what the documents promise a client, checked on the real services."""

from __future__ import annotations

import httpx
import pytest

from devstack.imagegen import encode, photo
from tests.integration.conftest import Stack, Tenant
from tests.integration.test_flow import spec

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
