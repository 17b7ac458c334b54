"""compose.yaml's services run as compose runs them, minus Docker: the same commands and the same
PixelFlow settings (concurrency, engine caps, CORS origins, metrics listeners, telemetry), with
only the addresses swapped for this suite's real PostgreSQL, Redis and LocalStack S3. A job goes
through create -> presigned PUT -> start -> worker -> signed webhook, and Prometheus' two scrape
targets answer."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.backing_services import free_port, stop_process, wait_for
from devstack.demo import create_client_with_key
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from infra.webhooks import verify
from tests.integration.conftest import PIXELFLOW, ROOT, Stack
from tests.timing import SLACK
from tests.unit.test_compose import SERVICES, _env

pytestmark = pytest.mark.integration


def _command(service: str, **replace: str) -> list[str]:
    """The service's command, with option values replaced (``--port`` -> a free port)."""
    cmd = list(SERVICES[service]["command"])
    for option, value in replace.items():
        cmd[cmd.index(f"--{option}") + 1] = value
    assert Path(PIXELFLOW).name == cmd[0]
    return [PIXELFLOW, *cmd[1:]]


@pytest.fixture
def compose_env(stack: Stack) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in _env("api").items() if k.startswith("PIXELFLOW_")}
    assert env == {k: v for k, v in _env("worker").items() if k.startswith("PIXELFLOW_")}
    port = free_port()
    env |= {
        "PIXELFLOW_DATABASE_URL": stack.env["PIXELFLOW_DATABASE_URL"],
        "PIXELFLOW_REDIS_URL": stack.env["PIXELFLOW_REDIS_URL"],
        "PIXELFLOW_QUEUE_NAME": f"compose-{uuid.uuid4().hex[:8]}",  # not the suite's shared worker's queue
        "PIXELFLOW_S3_ENDPOINT": stack.env["PIXELFLOW_S3_ENDPOINT"],
        "PIXELFLOW_S3_PUBLIC_ENDPOINT": stack.env["PIXELFLOW_S3_ENDPOINT"],
        "PIXELFLOW_S3_ACCESS_KEY": stack.env["PIXELFLOW_S3_ACCESS_KEY"],
        "PIXELFLOW_S3_SECRET_KEY": stack.env["PIXELFLOW_S3_SECRET_KEY"],
        "PIXELFLOW_S3_BUCKET": "compose-env",
        "PIXELFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PIXELFLOW_API_METRICS_PORT": str(free_port()),
        "PIXELFLOW_API_METRICS_HOST": "127.0.0.1",  # the suite only listens on loopback
        "PIXELFLOW_WORKER_METRICS_PORT": str(free_port()),
        "PIXELFLOW_WORKER_METRICS_HOST": "127.0.0.1",
        "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    }
    yield env


def test_compose_services_run_a_job_with_composes_settings(stack: Stack, compose_env: dict[str, str]) -> None:
    import asyncio
    import os

    port = compose_env["PIXELFLOW_PUBLIC_BASE_URL"].rsplit(":", 1)[1]
    env = {**os.environ, **compose_env}
    logs = stack.workdir / f"compose-{port}"
    logs.mkdir()
    migrate = subprocess.run(_command("migrate"), check=False, env=env, capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    procs = [
        subprocess.Popen(_command("api", host="127.0.0.1", port=port), env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=(logs / "api.log").open("wb")),
        subprocess.Popen(_command("worker"), env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=(logs / "worker.log").open("wb")),
    ]  # fmt: skip
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="the API")
        _, _, key, secret = asyncio.run(create_client_with_key(compose_env["PIXELFLOW_DATABASE_URL"], "compose"))
        spec = json.loads((ROOT / "examples" / "job.json").read_text())
        for variant in spec["pipeline"]:  # no asset uploaded here: keep the text watermark only
            if "steps" in variant:
                variant["steps"] = [s for s in variant["steps"] if not s.get("image")]
        with WebhookReceiver() as receiver, httpx.Client(base_url=api, timeout=30) as http:
            spec["webhook_url"] = receiver.url("/compose")
            auth = {"Authorization": f"Bearer {key}"}
            created = http.post("/v1/jobs", json=spec, headers=auth)
            assert created.status_code == 201, created.text
            job = created.json()
            source = encode(photo(1600, 1200, seed=4), ".jpg")
            put = httpx.put(job["upload"]["put"]["url"], content=source, headers={"Origin": "http://localhost:8000"})
            assert put.status_code == 200
            # compose's CORS origin is on the bucket: a page on localhost:8000 may upload
            assert put.headers.get("access-control-allow-origin") == "http://localhost:8000"
            assert http.post(f"/v1/jobs/{job['id']}/start", headers=auth).status_code == 202
            (delivery,) = receiver.wait("/compose", 1, 90.0)
            verify(secret, delivery.headers, delivery.body)
            event = json.loads(delivery.body)
            assert event["type"] == "job.succeeded", event
            assert {v["id"] for v in event["data"]["variants"]} == {v["id"] for v in spec["pipeline"]}

        api_metrics = httpx.get(f"http://127.0.0.1:{compose_env['PIXELFLOW_API_METRICS_PORT']}/metrics").text
        assert "pixelflow_jobs_created_total" in api_metrics
        worker_metrics = f"http://127.0.0.1:{compose_env['PIXELFLOW_WORKER_METRICS_PORT']}/metrics"
        finished = 'pixelflow_jobs_finished_total{reason="succeeded",status="succeeded"} 1.0'
        # counted once the run returns, which may be just after its webhook went out
        wait_for(lambda: finished in httpx.get(worker_metrics).text, timeout=3 * SLACK, what="the worker's job count")
    except BaseException:
        for name in ("api.log", "worker.log"):
            print(f"--- {name}\n{(logs / name).read_text()[-4000:]}")
        raise
    finally:
        for p in procs:
            stop_process(p, grace=15)
