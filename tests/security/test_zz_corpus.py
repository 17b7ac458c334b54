"""The hostile-request corpus: every request below is something a client got wrong or an attacker
tried. Each must be answered with a 4xx, never a 5xx. Runs last in the group (file name) so the
summary also covers what the other security tests recorded."""

from __future__ import annotations

import httpx
import pytest

from devstack.backing_services import free_port
from tests.integration.conftest import ApiServer, Stack, Tenant, make_tenant
from tests.integration.test_flow import spec
from tests.security.conftest import CORPUS, record
from tests.security.test_bad_requests import BAD_ASSET_KEYS, nested
from tests.security.test_svg_policy import HOSTILE
from tests.security.test_webhook_ssrf import BLOCKED

pytestmark = pytest.mark.integration


async def test_hostile_corpus_gets_4xx_never_5xx(stack: Stack, tenant: Tenant, api: ApiServer) -> None:
    http = tenant.http
    JSON = {"Content-Type": "application/json"}

    async def send(what: str, method: str, path: str, **kwargs: object) -> None:
        r = await http.request(method, path, **kwargs)
        record(what, r.status_code)

    # Webhook targets, against an API that (like production) refuses private receivers.
    strict = ApiServer(stack.settings(webhook_allow_private=False), free_port()).start()
    try:
        t = await make_tenant(stack, strict)
        for url, why in BLOCKED:
            r = await t.http.post("/v1/jobs", json={**spec(), "webhook_url": url})
            record(f"webhook {why}", r.status_code)
        await t.http.aclose()
    finally:
        strict.stop()
    for name, data, _ in HOSTILE:
        files = {"file": ("x.svg", data, "image/svg+xml")}
        await send(
            f"svg upload: {name}",
            "POST",
            "/v1/uploads",
            files=files,
            data={"spec": '{"version": 1, "pipeline": [{"id": "a", "action": "grayscale"}]}'},
        )
    for key in BAD_ASSET_KEYS:
        await send("asset key", "POST", "/v1/assets", json={"key": key})
    for depth in (65, 5_000, 200_000):
        for path in ("/v1/jobs", "/v1/specs/validate", "/v1/assets"):
            await send(f"nested {depth}", "POST", path, content=nested(depth), headers=JSON)
        await send(f"nested {depth} (arrays)", "POST", "/v1/jobs", content=b"[" * depth + b"]" * depth, headers=JSON)
    for body in (
        b"",
        b"{",
        b"null",
        b"[]",
        b'"x"',
        b"1e999999",
        b'{"version": 1e400}',
        b"\xff\xfe",
        b'{"a":"\\ud800"}',
    ):
        await send("malformed JSON", "POST", "/v1/jobs", content=body, headers=JSON)
    await send(
        "wrong content type",
        "POST",
        "/v1/jobs",
        content=b"version=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await send("body over the limit", "POST", "/v1/jobs", content=b"[" + b"1," * 600_000 + b"1]", headers=JSON)
    await send(
        "idempotency key with control chars", "POST", "/v1/jobs", json=spec(), headers={"Idempotency-Key": "a\tb"}
    )
    await send("idempotency key too long", "POST", "/v1/jobs", json=spec(), headers={"Idempotency-Key": "k" * 300})
    for path in (
        "/v1/jobs/../../etc/passwd",
        "/v1/jobs/%2e%2e%2f%2e%2e",
        "/v1/jobs/not-a-uuid",
        "/v1/jobs/00000000-0000-0000-0000-000000000000/variants/..%2f..%2fx",
        "/storage/..%2f..%2fetc/passwd",
        "/v1/jobs/%00",
    ):
        await send("path games", "GET", path)
    await send("metrics without a token", "GET", "/metrics")
    await send("query api_key only", "GET", "/v1/jobs?api_key=" + tenant.key, headers={"Authorization": ""})
    await send("bad cursor", "GET", "/v1/jobs?cursor=!!!notbase64&limit=100000")
    await send("bad status filter", "GET", "/v1/jobs?status=pwned")
    await send("bad date", "GET", "/v1/jobs?created_after=yesterday")
    await send(
        "validate with absurd source",
        "POST",
        "/v1/specs/validate",
        json={"spec": spec(), "source": {"width": 10**9, "height": 1}},
    )
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        r = await anonymous.post("/v1/jobs", json=spec())
        record("no API key", r.status_code)
        r = await anonymous.post("/v1/jobs", json=spec(), headers={"Authorization": "Bearer pf_" + "A" * 40})
        record("made-up API key", r.status_code)

    server_errors = [(what, status) for what, status in CORPUS if status >= 500]
    refused = [s for _, s in CORPUS if 400 <= s < 500]
    print(f"\nhostile corpus: {len(CORPUS)} requests, {len(refused)} refused with 4xx, {len(server_errors)} with 5xx")
    assert server_errors == []
    assert len(refused) == len(CORPUS), [c for c in CORPUS if not 400 <= c[1] < 500]
