"""Item 4: /metrics is not open to anyone who can reach the API, and its series never carry a
tenant-chosen name."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import generate_latest

from devstack.backing_services import free_port
from tests.integration.conftest import ApiServer, Stack, make_tenant
from tests.integration.test_flow import spec
from tests.security.conftest import ApiProcess, record

pytestmark = pytest.mark.integration


async def test_metrics_need_a_token_or_their_own_listener(stack: Stack, api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": "Basic Z3Vlc3M6"}):
            r = await http.get("/metrics", headers=headers)
            assert record("/metrics on the API port without the token", r.status_code) in (401, 404), r.text[:200]
            assert "pixelflow_" not in r.text


async def test_rate_limited_series_are_labelled_by_client_id(stack: Stack) -> None:
    server = ApiServer(stack.settings(rate_limit_per_minute=1, rate_limit_burst=1), free_port()).start()
    try:
        t = await make_tenant(stack, server)
        statuses = [(await t.http.post("/v1/jobs", json=spec())).status_code for _ in range(3)]
        await t.http.aclose()
    finally:
        server.stop()
    assert 429 in statuses
    text = generate_latest().decode()  # the in-process registry the API serves
    assert t.name not in text, "a tenant's name labels a metric series"
    assert f'pixelflow_rate_limited_total{{client="{t.client_id}"}}' in text


def test_metrics_token_and_separate_listener(stack: Stack, tmp_path) -> None:
    token = "metrics-token-" + "x" * 24
    port = free_port()
    proc = ApiProcess(
        stack.env, tmp_path / "api.log", PIXELFLOW_METRICS_TOKEN=token, PIXELFLOW_API_METRICS_PORT=str(port)
    ).start()
    try:
        assert httpx.get(f"{proc.url}/metrics").status_code == 401
        assert httpx.get(f"{proc.url}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = httpx.get(f"{proc.url}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "pixelflow_http_requests_total" in ok.text
        own = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert own.status_code == 200 and "pixelflow_jobs_created_total" in own.text
    finally:
        proc.stop()
    assert token not in (tmp_path / "api.log").read_text()
