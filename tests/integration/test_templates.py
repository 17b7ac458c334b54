"""Templates (presets) and scoped keys on real services: versions are immutable and pinned, a job
records the version it resolved (also through the one-call upload), parameters are typed, two
versions' diff names each change by its path, the dry run of a pinned version shows what the
latest changes, and presets-only and scoped keys are refused with 403 problem+json."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from devstack.imagegen import encode, photo
from infra.db import open_pool
from infra.repo import ClientRepo, JobRepo
from tests.integration.conftest import ROOT, ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def product(width: int) -> dict:
    """A template: one variant `width` wide, captioned by the `caption` parameter."""
    return {
        "name": "product",
        "spec": {
            "version": 1,
            "metadata": {"from": "template"},
            "pipeline": [
                {
                    "id": "card",
                    "steps": [
                        {"op": "resize", "width": width, "fit": "inside"},
                        {"op": "watermark", "text": {"$param": "caption"}, "font_size": {"$param": "size"}},
                    ],
                    "format": "jpeg",
                }
            ],
        },
        "parameters": {
            "caption": {"type": "string", "default": "ACME"},
            "size": {"type": "integer", "default": 12},
        },
    }


@asynccontextmanager
async def scoped_key(stack: Stack, api: ApiServer, t: Tenant, **grant: object) -> AsyncIterator[httpx.AsyncClient]:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        _, key = await ClientRepo(pool).create_key(t.client_id, "scoped", **grant)  # type: ignore[arg-type]
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        yield http


async def stored_spec(stack: Stack, job_id: str) -> dict:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        job = await JobRepo(pool).get(job_id)  # type: ignore[arg-type]
    finally:
        await pool.close()
    assert job is not None
    return job.spec


def _problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["code"] == code, body
    return body


async def test_versions_are_immutable_and_jobs_pin_them(stack: Stack, tenant: Tenant, worker: WorkerProcess) -> None:
    first = await tenant.http.post("/v1/templates", json=product(200))
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    again = await tenant.http.post("/v1/templates", json=product(200))  # the same: no new version
    assert (again.status_code, again.json()["version"]) == (200, 1)
    second = await tenant.http.post("/v1/templates", json=product(300))
    assert (second.status_code, second.json()["version"]) == (201, 2)

    listed = (await tenant.http.get("/v1/templates")).json()["templates"]
    assert [(t["name"], t["latest_version"]) for t in listed] == [("product", 2)]
    shown = (await tenant.http.get("/v1/templates/product")).json()
    assert shown["latest_version"] == 2
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    widths = [v["spec"]["pipeline"][0]["steps"][0]["width"] for v in shown["versions"]]
    assert widths == [300, 200]  # version 1 still says what it said

    source = encode(photo(1600, 1200, seed=3), ".jpg", Q=85)
    pinned = await create_and_upload(
        tenant, {"template": "product@1", "parameters": {"caption": "Sale -50%"}, "metadata": {"sku": "s1"}}, source
    )
    latest = await create_and_upload(tenant, {"template": "product"}, source)
    assert pinned["template"] == {"name": "product", "version": 1}
    assert latest["template"] == {"name": "product", "version": 2}
    assert pinned["metadata"] == {"sku": "s1"} and latest["metadata"] == {"from": "template"}
    for job in (pinned, latest):
        assert (await tenant.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
    done_pinned = await wait_status(tenant, pinned["id"], {"succeeded", "failed"})
    done_latest = await wait_status(tenant, latest["id"], {"succeeded", "failed"})
    assert done_pinned["status"] == done_latest["status"] == "succeeded", (done_pinned, done_latest)
    assert [(v["width"], v["height"]) for v in done_pinned["variants"]] == [(200, 150)]
    assert [(v["width"], v["height"]) for v in done_latest["variants"]] == [(300, 225)]
    assert done_pinned["template"] == {"name": "product", "version": 1}

    # the stored spec is the resolved one: parameters in, placeholders gone
    steps = (await stored_spec(stack, pinned["id"]))["pipeline"][0]["steps"]
    assert (steps[1]["text"], steps[1]["font_size"]) == ("Sale -50%", 12)
    steps = (await stored_spec(stack, latest["id"]))["pipeline"][0]["steps"]
    assert (steps[1]["text"], steps[1]["font_size"]) == ("ACME", 12)


async def test_templates_are_validated_and_references_checked(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    bad = product(200)
    bad["spec"]["pipeline"][0]["steps"][0]["width"] = 0
    bad["spec"]["pipeline"][0]["steps"][1]["color"] = {"$param": "undeclared"}
    body = _problem(await tenant.http.post("/v1/templates", json=bad), 422, "invalid_spec")
    assert [e["path"] for e in body["errors"]] == ["$.spec.pipeline[0].steps[1].color"]
    bad["spec"]["pipeline"][0]["steps"][1].pop("color")
    body = _problem(await tenant.http.post("/v1/templates", json=bad), 422, "invalid_spec")
    assert [e["path"] for e in body["errors"]] == ["$.spec.pipeline[0].steps[0].width"]
    wrong_default = product(200)
    wrong_default["parameters"]["size"]["default"] = "big"
    body = _problem(await tenant.http.post("/v1/templates", json=wrong_default), 422, "invalid_spec")
    assert [e["path"] for e in body["errors"]] == ["$.parameters.size.default"]
    assert (await tenant.http.get("/v1/templates")).json() == {"templates": []}  # nothing was saved

    assert (await tenant.http.post("/v1/templates", json=product(200))).status_code == 201
    _problem(await tenant.http.post("/v1/jobs", json={"template": "nope"}), 404, "template_not_found")
    _problem(await tenant.http.post("/v1/jobs", json={"template": "product@2"}), 404, "template_not_found")
    body = _problem(
        await tenant.http.post("/v1/jobs", json={"template": "product", "parameters": {"size": "x", "other": 1}}),
        422,
        "invalid_spec",
    )
    assert sorted(e["path"] for e in body["errors"]) == ["$.parameters.other", "$.parameters.size"]
    # a parameter's value still has to make a valid spec
    body = _problem(
        await tenant.http.post("/v1/jobs", json={"template": "product", "parameters": {"size": 0}}), 422, "invalid_spec"
    )
    assert body["errors"][0]["path"] == "$.pipeline[0].steps[1].font_size"
    _problem(
        await tenant.http.post("/v1/jobs", json={"template": "product", "pipeline": []}), 422, "invalid_spec"
    )  # a reference or a spec, not both

    other = await make_tenant(stack, api)  # templates are per client
    try:
        _problem(await other.http.get("/v1/templates/product"), 404, "template_not_found")
        _problem(await other.http.post("/v1/jobs", json={"template": "product"}), 404, "template_not_found")
    finally:
        await other.http.aclose()


async def test_the_dry_run_resolves_a_template(tenant: Tenant) -> None:
    assert (await tenant.http.post("/v1/templates", json=product(200))).status_code == 201
    r = await tenant.http.post(
        "/v1/specs/validate",
        json={
            "spec": {"template": "product@1", "parameters": {"caption": "Hi"}},
            "source": {"width": 1600, "height": 1200},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["valid"] is True and body["template"] == {"name": "product", "version": 1}
    assert body["spec"]["pipeline"][0]["steps"][1]["text"] == "Hi"
    assert [(v["id"], v["width"], v["height"]) for v in body["variants"]] == [("card", 200, 150)]
    r = await tenant.http.post("/v1/specs/validate", json={"spec": spec()})
    assert r.status_code == 200 and r.json()["template"] is None


async def test_a_presets_only_key_may_not_send_a_spec(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    assert (await tenant.http.post("/v1/templates", json=product(200))).status_code == 201
    async with scoped_key(stack, api, tenant, presets_only=True) as http:
        body = _problem(await http.post("/v1/jobs", json=spec()), 403, "presets_only")
        assert "templates only" in body["detail"]
        files = {"file": ("a.jpg", encode(photo(64, 48, seed=1), ".jpg"), "image/jpeg")}
        _problem(await http.post("/v1/uploads", data={"spec": json.dumps(spec())}, files=files), 403, "presets_only")
        r = await http.post("/v1/jobs", json={"template": "product", "parameters": {"caption": "ok"}})
        assert r.status_code == 201, r.text
        assert r.json()["template"] == {"name": "product", "version": 1}
        # the dry run of a spec is allowed: it creates nothing
        assert (await http.post("/v1/specs/validate", json={"spec": spec()})).status_code == 200
        # nor may it save a template, and then run any spec through it: no templates:write, ever
        body = _problem(await http.post("/v1/templates", json=product(300)), 403, "presets_only")
        assert "templates:write" in body["detail"]
    assert (await tenant.http.post("/v1/jobs", json=spec())).status_code == 201  # the full key still may
    assert (await tenant.http.get("/v1/templates/product")).json()["latest_version"] == 1  # nothing was saved


async def test_a_presets_only_key_never_holds_templates_write(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        repo = ClientRepo(pool)
        with pytest.raises(ValueError, match="presets-only key cannot hold templates:write"):
            await repo.create_key(tenant.client_id, "x", scopes=("jobs:write", "templates:write"), presets_only=True)
        # a key made so before the rule (written straight to the table) is refused all the same
        key, plaintext = await repo.create_key(tenant.client_id, "old", scopes=("jobs:write",), presets_only=True)
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE api_keys SET scopes = %s WHERE id = %s", (["jobs:write", "templates:write"], key.id)
            )
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {plaintext}"}) as http:
        _problem(await http.post("/v1/templates", json=product(200)), 403, "presets_only")
    # a full-access key (scopes NULL) may save templates, as before
    assert (await tenant.http.post("/v1/templates", json=product(200))).status_code == 201


async def test_scoped_keys_reach_only_their_routes(stack: Stack, api: ApiServer, tenant: Tenant) -> None:
    job = (await tenant.http.post("/v1/jobs", json=spec())).json()
    async with scoped_key(stack, api, tenant, scopes=("jobs:read",)) as reader:
        assert (await reader.get("/v1/jobs")).status_code == 200
        assert (await reader.get(f"/v1/jobs/{job['id']}")).status_code == 200
        assert (await reader.get("/v1/templates")).status_code == 200  # reading templates needs no scope
        for method, path, payload in [
            ("POST", "/v1/jobs", spec()),
            ("POST", f"/v1/jobs/{job['id']}/cancel", None),
            ("POST", "/v1/templates", product(200)),
            ("POST", "/v1/assets", {"key": "logo.png"}),
        ]:
            body = _problem(await reader.request(method, path, json=payload), 403, "insufficient_scope")
            assert "scope" in body["detail"]
    async with scoped_key(stack, api, tenant, scopes=("templates:write",)) as editor:
        assert (await editor.post("/v1/templates", json=product(200))).status_code == 201
        _problem(await editor.post("/v1/jobs", json={"template": "product"}), 403, "insufficient_scope")
        _problem(await editor.get("/v1/jobs"), 403, "insufficient_scope")
    async with scoped_key(stack, api, tenant, scopes=("jobs:write", "assets:write")) as writer:
        assert (await writer.post("/v1/jobs", json={"template": "product"})).status_code == 201
        assert (await writer.post("/v1/assets", json={"key": "logo.png"})).status_code == 201


async def test_the_api_docs_template_example_runs_as_written(tenant: Tenant) -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", page, re.S) if "$API/v1/templates" in b)
    api = str(tenant.http.base_url).rstrip("/")
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"API={api}; KEY={tenant.key}\n{block}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    saved, job = (json.loads(line) for line in out.stdout.replace("}{", "}\n{").splitlines() if line.strip())
    assert saved["version"] == 1 and saved["parameters"]["caption"] == {"type": "string", "default": "© ACME"}
    assert job["status"] == "created" and job["template"] == {"name": "product", "version": 1}
    assert job["metadata"] == {"sku": "1234"}


def _third(template: dict) -> dict:
    """Version 3 of `product`: the size parameter's default raised, a second variant, metadata gone."""
    body = json.loads(json.dumps(template))
    body["parameters"]["size"]["default"] = 18
    body["spec"]["pipeline"].append({"id": "thumb", "action": "resize", "width": 100, "format": "webp"})
    del body["spec"]["metadata"]
    return body


async def test_a_diff_names_each_change_by_its_path(tenant: Tenant) -> None:
    for body in (product(200), product(300), _third(product(300))):
        assert (await tenant.http.post("/v1/templates", json=body)).status_code == 201
    width = "$.spec.pipeline[0].steps[0].width"
    r = await tenant.http.get("/v1/templates/product/diff", params={"from": 1, "to": 2})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "product",
        "from_version": 1,
        "to_version": 2,
        "changes": [{"op": "replace", "path": width, "before": 200, "after": 300}],
    }
    latest = (await tenant.http.get("/v1/templates/product/diff")).json()  # the latest against the one before it
    assert (latest["from_version"], latest["to_version"]) == (2, 3)
    assert latest["changes"] == [
        {"op": "remove", "path": "$.spec.metadata", "before": {"from": "template"}, "after": None},
        {
            "op": "add",
            "path": "$.spec.pipeline[1]",
            "before": None,
            "after": {"id": "thumb", "action": "resize", "width": 100, "format": "webp"},
        },
        {"op": "replace", "path": "$.parameters.size.default", "before": 12, "after": 18},
    ]
    both = (await tenant.http.get("/v1/templates/product/diff", params={"from": 1})).json()
    assert (both["to_version"], [c["path"] for c in both["changes"]]) == (
        3,
        ["$.spec.metadata", width, "$.spec.pipeline[1]", "$.parameters.size.default"],
    )
    backwards = (await tenant.http.get("/v1/templates/product/diff", params={"from": 3, "to": 1})).json()
    assert [c["op"] for c in backwards["changes"]] == ["replace", "remove", "add", "replace"]
    _problem(await tenant.http.get("/v1/templates/product/diff", params={"to": 9}), 404, "template_not_found")
    _problem(await tenant.http.get("/v1/templates/nothing/diff"), 404, "template_not_found")
    r = await tenant.http.get("/v1/templates/product/diff", params={"from": 0})
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), r.text


async def test_the_dry_run_of_a_pinned_version_shows_what_the_latest_changes(tenant: Tenant) -> None:
    for body in (product(200), _third(product(300))):
        assert (await tenant.http.post("/v1/templates", json=body)).status_code == 201
    pinned = (await tenant.http.post("/v1/specs/validate", json={"spec": {"template": "product@1"}})).json()
    assert pinned["template"] == {"name": "product", "version": 1}
    newer = pinned["newer_template"]
    assert (newer["from_version"], newer["to_version"]) == (1, 2)
    assert {"op": "replace", "path": "$.spec.pipeline[0].steps[0].width", "before": 200, "after": 300} in newer[
        "changes"
    ]
    latest = (await tenant.http.post("/v1/specs/validate", json={"spec": {"template": "product"}})).json()
    assert latest["template"] == {"name": "product", "version": 2} and latest["newer_template"] is None


async def test_a_one_call_upload_names_a_template(stack: Stack, tenant: Tenant, worker: WorkerProcess) -> None:
    assert (await tenant.http.post("/v1/templates", json=product(160))).status_code == 201
    files = {"file": ("p.jpg", encode(photo(640, 480, seed=12), ".jpg"), "image/jpeg")}
    body = {"template": "product@1", "parameters": {"caption": "Upload"}, "metadata": {"via": "uploads"}}
    r = await tenant.http.post("/v1/uploads", data={"spec": json.dumps(body)}, files=files)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["template"] == {"name": "product", "version": 1} and job["metadata"] == {"via": "uploads"}
    done = await wait_status(tenant, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert [(v["id"], v["width"], v["height"]) for v in done["variants"]] == [("card", 160, 120)]
    assert (await stored_spec(stack, job["id"]))["pipeline"][0]["steps"][1]["text"] == "Upload"
    _problem(
        await tenant.http.post("/v1/uploads", data={"spec": json.dumps({"template": "nope"})}, files=files),
        404,
        "template_not_found",
    )
