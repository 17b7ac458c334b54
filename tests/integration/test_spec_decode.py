"""Each request decodes its job spec once, under the limits of the client that sent it: counted
through real API requests (the API runs in this process, so the decode function can be watched)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Awaitable, Iterator

import httpx
import msgspec
import pytest

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from pipeline.dsl import Limits, decode
from tests.integration.conftest import ApiServer, Stack, make_tenant
from tests.integration.test_cli_admin import cli_json
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration

BUDGET = 5000  # the client's own max_job_cost; the suite's global one is 120,000
# Under the global budget, over the client's whatever the source: an exact 1000x1000 AVIF at effort 9.
COSTLY = {
    "version": 1,
    "pipeline": [{"id": "big", "action": "resize", "width": 1000, "height": 1000, "fit": "fill", "format": "avif",
                  "effort": 9}],
}  # fmt: skip


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Limits]]:
    """The limits of every ``decode_job_spec`` call from now on, wherever a module imported it."""
    original, calls = decode.decode_job_spec, []

    def counted(data: object, limits: Limits | None = None) -> object:
        calls.append(limits)
        return original(data, limits)

    for module in list(sys.modules.values()):
        if getattr(module, "decode_job_spec", None) is original:
            monkeypatch.setattr(module, "decode_job_spec", counted)
    yield calls


def _over_budget(r: httpx.Response) -> None:
    """Refused as today: 422 over_budget at the variant, against the client's budget."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["code"], body["detail"]) == ("over_budget", "the job would break its limits whatever the source")
    [error] = body["errors"]
    assert error["path"] == "$.pipeline[0]"
    assert error["message"].endswith(f"exceed its budget of {BUDGET:,}"), error


async def test_every_request_decodes_the_spec_once_under_the_clients_limits(
    stack: Stack, decodes: list[Limits]
) -> None:
    # an API on a queue no worker reads: jobs it starts stay queued
    api = ApiServer(stack.settings(queue_name=f"pixelflow:decode-{uuid.uuid4().hex[:6]}"), free_port()).start()
    try:
        t = await make_tenant(stack, api)
        cli_json(stack, "clients", "limits", t.name, "--max-job-cost", str(BUDGET))
        source = encode(photo(400, 300, seed=3), ".jpg")

        async def once(what: str, request: Awaitable[httpx.Response]) -> httpx.Response:
            decodes.clear()
            r = await request
            assert [d.max_job_cost if d else None for d in decodes] == [BUDGET], (what, r.text)
            return r

        template = {"name": "costly", "spec": {**COSTLY, "metadata": {"caption": {"$param": "caption"}}},
                    "parameters": {"caption": {"type": "string", "default": "x"}}}  # fmt: skip
        assert (await once("save a template", t.http.post("/v1/templates", json=template))).status_code == 201
        checked = await once("dry run", t.http.post("/v1/specs/validate", json={"spec": COSTLY}))
        assert checked.status_code == 200 and checked.json()["valid"] is False
        # the normalised spec, as encoding the decoded spec writes it
        assert checked.json()["spec"] == msgspec.json.decode(decode.encode_job_spec(decode.decode_job_spec(COSTLY)))
        _over_budget(await once("create", t.http.post("/v1/jobs", json=COSTLY)))
        _over_budget(await once("create from a template", t.http.post("/v1/jobs", json={"template": "costly"})))
        _over_budget(
            await once(
                "create, upload and start",
                t.http.post("/v1/uploads", files={"file": ("a.jpg", source)}, data={"spec": json.dumps(COSTLY)}),
            )
        )

        job = await create_and_upload(t, spec(), source)
        assert (await once("start", t.http.post(f"/v1/jobs/{job['id']}/start"))).status_code == 202
        uploaded = await once(
            "create, upload and start",
            t.http.post("/v1/uploads", files={"file": ("a.jpg", source)}, data={"spec": json.dumps(spec())}),
        )
        assert uploaded.status_code == 202, uploaded.text
        copied = await once(
            "create and start from another job's original",
            t.http.post("/v1/jobs", json={**spec(), "source": {"job": job["id"]}}),
        )
        assert copied.status_code == 201 and copied.json()["status"] == "queued", copied.text
        await t.http.aclose()
    finally:
        api.stop()
