"""Real services for integration tests, started once per session on 127.0.0.1 free ports:
Redis, PostgreSQL, LocalStack S3 (signature validation on), the API under uvicorn, a worker
process, and a webhook receiver. Each test gets its own tenant, so tests never share jobs.

The fixture functions below are registered in tests/conftest.py, so that tests/integration and
tests/security share one stack per session instead of starting one each."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer, free_port, wait_for
from devstack.demo import create_client_with_key
from devstack.receiver import WebhookReceiver
from infra.db import migrate
from infra.settings import Settings, load_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PIXELFLOW = str(Path(sys.executable).with_name("pixelflow"))


@dataclass
class Stack:
    redis: RedisServer
    postgres: PostgresServer
    s3: LocalStackS3
    env: dict[str, str]
    api_url: str
    workdir: Path

    def settings(self, **overrides: object) -> Settings:
        return load_settings(self.env, **overrides)


def _env(redis: RedisServer, pg: PostgresServer, s3: LocalStackS3, api_port: int) -> dict[str, str]:
    return {
        "PIXELFLOW_DATABASE_URL": pg.url,
        "PIXELFLOW_REDIS_URL": redis.url,
        "PIXELFLOW_STORAGE": "s3",
        "PIXELFLOW_S3_ENDPOINT": s3.endpoint,
        "PIXELFLOW_S3_ACCESS_KEY": s3.access_key,
        "PIXELFLOW_S3_SECRET_KEY": s3.secret_key,
        "PIXELFLOW_S3_BUCKET": "pixelflow-test",
        "PIXELFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true",  # receivers run on loopback here
        "PIXELFLOW_URL_SOURCES_ALLOW_PRIVATE": "true",  # and so do image origins
        "PIXELFLOW_SOURCE_FETCH_TIMEOUT_SECONDS": "2",
        "PIXELFLOW_WEBHOOK_BACKOFF_BASE_SECONDS": "0.5",
        "PIXELFLOW_WEBHOOK_BACKOFF_MAX_SECONDS": "2",
        "PIXELFLOW_WEBHOOK_MAX_ATTEMPTS": "4",
        "PIXELFLOW_WEBHOOK_TIMEOUT_SECONDS": "3",
        # room for an engine child to start and a job to run on a loaded machine (the deadline
        # counts from the claim); the tests of the deadline set their own
        "PIXELFLOW_DEADLINE_SECONDS": "30",
        "PIXELFLOW_LEASE_SECONDS": "3",
        "PIXELFLOW_WORKER_DRAIN_SECONDS": "5",
        "PIXELFLOW_WORKER_POLL_DELAY": "0.02",
        "PIXELFLOW_SWEEP_INTERVAL_SECONDS": "1",
        "PIXELFLOW_MAX_SOURCE_BYTES": str(3 * 1024 * 1024),
        "PIXELFLOW_MAX_INLINE_UPLOAD_BYTES": str(3 * 1024 * 1024),
        "PIXELFLOW_RATE_LIMIT_PER_MINUTE": "600",
        "PIXELFLOW_RATE_LIMIT_BURST": "200",
        "PIXELFLOW_LOG_LEVEL": "INFO",
        "PIXELFLOW_SIGNUP": "open",  # the dashboard tests sign people up
        # the tests play the reverse proxy: each signs in from its own X-Forwarded-For address, so
        # one test's per-address limits never throttle another's (tests/security/test_dashboard_auth.py)
        "PIXELFLOW_TRUSTED_PROXIES": "127.0.0.1",
        "PIXELFLOW_S3_CORS_ORIGINS": f"http://127.0.0.1:{api_port}",  # the dashboard uploads from its own origin
    }


def stack() -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="pixelflow-it-"))
    os.chmod(workdir, 0o755)
    redis = RedisServer(workdir / "redis")
    pg = PostgresServer(workdir / "pg")
    s3 = LocalStackS3(workdir / "s3")
    started: list = []
    try:
        for server in (redis, pg, s3):
            server.start()
            started.append(server)
        migrate(pg.url)
        api_port = free_port()
        yield Stack(redis, pg, s3, _env(redis, pg, s3, api_port), f"http://127.0.0.1:{api_port}", workdir)
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class ApiServer:
    def __init__(self, settings: Settings, port: int, **app_options: object) -> None:
        from control_plane.app import create_app

        app = create_app(settings, **app_options)  # type: ignore[arg-type]
        # as `pixelflow api` runs (control_plane/uvicorn_config.py): forwarding headers are the app's to judge
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> ApiServer:
        self.thread.start()
        wait_for(lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, timeout=30, what="API")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def api(stack: Stack) -> Iterator[ApiServer]:
    server = ApiServer(stack.settings(), int(stack.api_url.rsplit(":", 1)[1])).start()
    yield server
    server.stop()


class WorkerProcess:
    """``pixelflow worker`` as a real child process, so tests can SIGKILL it mid-job."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(
            [PIXELFLOW, "worker"], env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), cwd=ROOT
        )
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def worker(stack: Stack) -> Iterator[WorkerProcess]:
    w = WorkerProcess(stack.env, stack.workdir / "worker.log").start()
    yield w
    w.stop()


def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@dataclass
class Tenant:
    client_id: uuid.UUID
    name: str
    key: str
    key_id: uuid.UUID
    secret: str
    http: httpx.AsyncClient


ISSUED_KEYS: list[str] = []  # every key the suite created, for the no-secrets-in-logs check


async def make_tenant(stack: Stack, api: ApiServer) -> Tenant:
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    client, key, plaintext, secret = await create_client_with_key(stack.env["PIXELFLOW_DATABASE_URL"], name, "tests")
    ISSUED_KEYS.extend([plaintext, secret])
    http = httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {plaintext}"}, timeout=30)
    return Tenant(client.id, name, plaintext, key.id, secret, http)


async def tenant(stack: Stack, api: ApiServer) -> AsyncIterator[Tenant]:
    t = await make_tenant(stack, api)
    yield t
    await t.http.aclose()


async def wait_status(t: Tenant, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = (await t.http.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"job {job_id} stayed {job['status']}")
        await asyncio.sleep(0.1)
