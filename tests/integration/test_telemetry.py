"""One trace per job, asserted on real services: API request -> job.start -> queue -> worker stages
-> each webhook attempt (with traceparent on the wire); a signed image URL request's span names its
render and, when it joined another's, links to that render's trace. Prometheus metrics on the API."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_plane.deps import open_deps
from data_plane.worker import build_workers
from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from infra.telemetry import configure_tracing
from tests.integration.conftest import ApiServer, Stack, WorkerProcess, make_tenant
from tests.integration.test_flow import create_and_upload, spec

pytestmark = pytest.mark.integration


async def test_a_job_is_one_trace_from_api_to_webhook(stack: Stack, receiver: WebhookReceiver) -> None:
    exporter = InMemorySpanExporter()
    provider = configure_tracing("none", "pixelflow-test", custom=exporter)
    assert provider is trace.get_tracer_provider(), "another test installed a tracer provider first"
    queue = f"pixelflow:trace-{uuid.uuid4().hex[:6]}"
    settings = stack.settings(queue_name=queue)
    api = ApiServer(settings, free_port(), tracer_provider=provider).start()
    try:
        t = await make_tenant(stack, api)
        path = f"/trace/{t.name}"
        job = await create_and_upload(t, spec(receiver.url(path)), encode(photo(400, 300), ".jpg"))
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        async with open_deps(settings) as deps:  # an in-process worker, draining its queues once
            images, hooks, *_ = build_workers(settings, deps, burst=True)
            await images.async_run()
            await hooks.async_run()
        (delivery,) = receiver.wait(path, 1)
        await t.http.aclose()
    finally:
        api.stop()
    provider.force_flush()
    spans = exporter.get_finished_spans()
    create = next(s for s in spans if s.name.startswith("POST /v1/jobs") and s.kind == trace.SpanKind.SERVER)
    tid = create.context.trace_id
    mine = [s for s in spans if s.context.trace_id == tid]
    by_name: dict[str, list] = {}
    for s in mine:
        by_name.setdefault(s.name, []).append(s)
    for name in (
        "job.start",
        "job.process",
        "storage.get",
        "pipeline.probe",
        "pipeline.decode",
        "webhook.deliver",
        "webhook.attempt",
    ):
        assert name in by_name, f"{name} missing from the job's trace: {sorted(by_name)}"
    assert len(by_name["pipeline.variant"]) == 3 and len(by_name["storage.put"]) == 3

    ids = {s.context.span_id: s for s in mine}

    def parent_name(s) -> str:
        return ids[s.parent.span_id].name if s.parent and s.parent.span_id in ids else "-"

    (start,) = by_name["job.start"]
    (process,) = by_name["job.process"]
    assert parent_name(process) == "job.start"
    assert start.links and start.links[0].context.trace_id != tid  # the /start request's own trace, linked
    for name in ("storage.get", "pipeline.probe", "pipeline.decode", "pipeline.variant", "storage.put"):
        assert all(parent_name(s) == "job.process" for s in by_name[name]), name
    assert parent_name(by_name["webhook.attempt"][0]) == "webhook.deliver"
    assert parent_name(by_name["webhook.deliver"][0]) == "job.process"
    assert {s.attributes["variant.id"] for s in by_name["pipeline.variant"]} == {"large", "thumb", "gray"}
    # the receiver sees the attempt's span as its parent
    traceparent = delivery.headers["traceparent"]
    assert traceparent.split("-")[1] == format(tid, "032x")
    assert traceparent.split("-")[2] == format(by_name["webhook.attempt"][0].context.span_id, "016x")


async def test_a_url_request_links_to_its_render(stack: Stack, worker: WorkerProcess) -> None:
    from pixelflow_client import image_url

    from tests.integration.test_delivery import _signing_key, _source_job

    exporter = InMemorySpanExporter()
    provider = configure_tracing("none", "pixelflow-test", custom=exporter)
    assert isinstance(provider, TracerProvider)
    # when another test installed the provider first; else spans come twice, once per span id below
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    api = ApiServer(stack.settings(), free_port(), tracer_provider=provider).start()
    try:
        t = await make_tenant(stack, api)
        kid, secret = await _signing_key(stack, t.client_id)
        url = image_url(api.url, kid, secret, job=await _source_job(t, encode(photo(800, 600), ".jpg")), width=90)
        async with httpx.AsyncClient(timeout=30) as http:
            answers = await asyncio.gather(*(http.get(url) for _ in range(4)))  # one render, the others join it
        assert [r.status_code for r in answers] == [200] * 4
        await t.http.aclose()
    finally:
        api.stop()
    provider.force_flush()
    requests = {s.context.span_id: s for s in exporter.get_finished_spans() if "pixelflow.url.result" in s.attributes}
    by_result: dict[str, list] = {}
    for s in requests.values():
        by_result.setdefault(s.attributes["pixelflow.url.result"], []).append(s)
    (miss,) = by_result["miss"]
    assert by_result.get("coalesced"), sorted(by_result)
    render_job = miss.attributes["pixelflow.url.render_job"]
    for joined in by_result["coalesced"]:
        assert joined.attributes["pixelflow.url.render_job"] == render_job
        (link,) = joined.links
        assert link.context.trace_id == miss.context.trace_id  # the render's trace starts at the miss
        assert link.context.trace_id != joined.context.trace_id


async def test_api_exposes_prometheus_metrics(stack: Stack) -> None:
    # /metrics on the API port needs PIXELFLOW_METRICS_TOKEN (tests/security/test_metrics_exposure.py)
    api = ApiServer(stack.settings(metrics_token="scrape-token"), free_port()).start()
    try:
        t = await make_tenant(stack, api)
        await t.http.post("/v1/jobs", json=spec())
        await t.http.get(f"/v1/jobs/{uuid.uuid4()}")
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": "Bearer scrape-token"}) as http:
            text = (await http.get("/metrics")).text
        await t.http.aclose()
    finally:
        api.stop()
    assert "pixelflow_jobs_created_total" in text
    assert "pixelflow_http_requests_total{" in text
    assert 'path="/v1/jobs/{job_id}"' in text and 'status_code="404"' in text  # templated, not raw ids
    assert "pixelflow_http_request_duration_seconds_bucket" in text
