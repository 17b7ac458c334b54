"""The observability bundle and probes against the real processes: every series an alert or a
dashboard panel reads is reported, with samples, by a running ``pixelflow api`` or ``pixelflow
worker`` once a job has gone through; every probe path in the API's Deployment answers 200."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.backing_services import free_port, wait_for
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.deploy.manifests import expressions, metric_names, one, pod_spec
from tests.integration.conftest import Stack, WorkerProcess, make_tenant, wait_status
from tests.integration.test_flow import create_and_upload, spec
from tests.security.conftest import ApiProcess

pytestmark = pytest.mark.integration

# Series that come from elsewhere, each allowed only where it is documented to be needed.
EXTERNAL = {
    "kube_deployment_status_replicas_available": "kube-state-metrics (the readiness alert)",
    "kube_deployment_spec_replicas": "kube-state-metrics (the readiness alert)",
}


def _samples(url: str) -> set[str]:
    text = httpx.get(url, timeout=10).text
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


async def test_every_alert_and_panel_reads_reported_series(
    stack: Stack, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    queue = f"pixelflow:obs-{uuid.uuid4().hex[:6]}"
    api_metrics, worker_metrics = free_port(), free_port()
    shared = {
        "PIXELFLOW_QUEUE_NAME": queue,
        "PIXELFLOW_RATE_LIMIT_PER_MINUTE": "1",  # the third create is refused: a 429 and its series
        "PIXELFLOW_RATE_LIMIT_BURST": "2",
    }
    api = ApiProcess(stack.env, tmp_path / "api.log", PIXELFLOW_API_METRICS_PORT=str(api_metrics), **shared).start()
    worker_env = {
        **stack.env,
        **shared,
        "PIXELFLOW_WORKER_METRICS_PORT": str(worker_metrics),
        "PIXELFLOW_ENGINE_MAX_JOBS": "1",  # the engine is replaced after the job: a restart series
    }
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    try:
        t = await make_tenant(stack, api)  # type: ignore[arg-type]
        job = await create_and_upload(t, spec(receiver.url(f"/obs/{t.name}")), encode(photo(640, 480), ".jpg"))
        assert (await t.http.post(f"/v1/jobs/{job['id']}/start")).status_code == 202
        assert (await wait_status(t, job["id"], {"succeeded", "failed"}))["status"] == "succeeded"
        receiver.wait(f"/obs/{t.name}", 1, timeout=30)
        statuses = [(await t.http.post("/v1/jobs", json=spec())).status_code for _ in range(3)]
        assert 429 in statuses
        await t.http.aclose()

        def worker_reported() -> bool:  # gauges are written each sweep (1 s here)
            names = _samples(f"http://127.0.0.1:{worker_metrics}/metrics")
            return {"pixelflow_queue_depth", "pixelflow_engine_rss_bytes", "pixelflow_engine_restarts_total"} <= names

        wait_for(worker_reported, timeout=30, what="the worker's gauges")
        reported = _samples(f"http://127.0.0.1:{api_metrics}/metrics") | _samples(
            f"http://127.0.0.1:{worker_metrics}/metrics"
        )
    finally:
        worker.stop()
        api.stop()
    missing = {}
    for where, expr in expressions().items():
        names = metric_names(expr)
        assert names, f"{where}: reads no series? {expr}"
        for name in names - reported:
            if name not in EXTERNAL:
                missing[where] = name
    assert not missing, f"series no PixelFlow process reports: {missing}"


def test_every_probe_path_answers(stack: Stack, tmp_path: Path) -> None:
    container = pod_spec(one("Deployment", "pixelflow-api"))["containers"][0]
    probes = [container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["port"] for p in probes} == {"http"} and ports["http"] == 8000
    api = ApiProcess(stack.env, tmp_path / "api.log").start()
    try:
        for probe in probes:
            r = httpx.get(f"{api.url}{probe['path']}", timeout=5)
            assert r.status_code == 200, (probe["path"], r.text)
    finally:
        api.stop()
    assert {p["path"] for p in probes} == {"/healthz", "/readyz"}
