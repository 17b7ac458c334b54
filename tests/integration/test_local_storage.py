"""The single-machine setup: objects in a directory, presigned URLs served and checked by the API."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pyvips

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from tests.integration.conftest import ApiServer, Stack, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import spec

pytestmark = pytest.mark.integration


async def test_local_storage_end_to_end(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    queue = "pixelflow:local-storage"
    local = {
        "storage": "local",
        "local_storage_dir": str(tmp_path / "objects"),
        "url_signing_secret": "test-signing-secret",
        "public_base_url": f"http://127.0.0.1:{port}",
        "queue_name": queue,
    }
    env = {**stack.env, **{f"PIXELFLOW_{k.upper()}": v for k, v in local.items()}}
    api = ApiServer(stack.settings(**local), port).start()
    worker = WorkerProcess(env, stack.workdir / "local-worker.log").start()
    try:
        t = await make_tenant(stack, api)
        job = (await t.http.post("/v1/jobs", json=spec())).json()
        assert job["upload"]["post"] is None  # the local backend takes PUT only
        url = job["upload"]["put"]["url"]
        assert url.startswith(f"http://127.0.0.1:{port}/v1/storage/uploads/")
        data = encode(photo(500, 400), ".jpg")
        async with httpx.AsyncClient() as plain:
            assert (await plain.put(url.replace("sig=", "sig=0"), content=data)).status_code == 403
            assert (await plain.put(url, content=b"\xff" * (3 * 1024 * 1024 + 1))).status_code == 413
            put = await plain.put(url, content=data)
            assert put.status_code == 200 and put.content == b""  # as S3: a shell's curl prints nothing
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        final = await wait_status(t, job["id"], {"succeeded", "failed"})
        assert final["status"] == "succeeded", final
        async with httpx.AsyncClient() as plain:
            for v in final["variants"]:
                r = await plain.get(v["url"])
                assert r.status_code == 200 and r.headers["content-type"] == v["content_type"]
                assert pyvips.Image.new_from_buffer(r.content, "").width == v["width"]
            url = final["variants"][0]["url"]
            tampered = url[:-1] + ("0" if url[-1] != "0" else "1")  # a different last signature digit
            assert (await plain.get(tampered)).status_code == 403
            from infra.storage import open_store

            store = open_store(stack.settings(**local))
            expired = store.presign_get(f"sources/{t.client_id}/{job['id']}", expires=timedelta(seconds=1))
            time.sleep(2.1)
            assert (await plain.get(expired)).status_code == 403
        assert (tmp_path / "objects" / "sources" / str(t.client_id) / job["id"]).is_file()
        await t.http.aclose()
    finally:
        worker.stop()
        api.stop()
