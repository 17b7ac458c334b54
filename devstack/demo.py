"""``pixelflow up``: the whole service on one machine, and one demo job through to a verified webhook."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from devstack.servers import ROOT, PostgresServer, RedisServer, free_port, stop_process, wait_for

__all__ = ["create_client_with_key", "run_demo_stack"]


def run_demo_stack(*, keep_running: bool = False) -> int:
    """``pixelflow up``: Redis and PostgreSQL (installed if absent), the API and a worker, local
    storage unless ``PIXELFLOW_STORAGE=s3`` is set, then one demo job through to a verified webhook."""
    import tempfile

    if shutil.which("redis-server") is None or not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        print("installing Redis and PostgreSQL ...", flush=True)
        subprocess.run(["/bin/bash", str(ROOT / "build" / "services.sh"), "--no-localstack"], check=True)
    work = Path(tempfile.mkdtemp(prefix="pixelflow-up-"))
    os.chmod(work, 0o755)  # noqa: S103 - PostgreSQL runs as its own user and must reach its data dir
    redis, pg = RedisServer(work / "redis"), PostgresServer(work / "pg")
    procs: list[subprocess.Popen] = []
    try:
        redis.start()
        pg.start()
        from infra.db import migrate

        migrate(pg.url)
        api_port = free_port()
        env = {
            "PIXELFLOW_DATABASE_URL": pg.url,
            "PIXELFLOW_REDIS_URL": redis.url,
            "PIXELFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
            "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true",  # the demo receiver listens on loopback
            "PIXELFLOW_LOG_FORMAT": "text",
            "PIXELFLOW_LOG_LEVEL": "WARNING",
        }
        if os.environ.get("PIXELFLOW_STORAGE", "local") == "local":
            env |= {
                "PIXELFLOW_STORAGE": "local",
                "PIXELFLOW_LOCAL_STORAGE_DIR": str(work / "objects"),
                "PIXELFLOW_URL_SIGNING_SECRET": os.urandom(16).hex(),
            }
        full_env = {**os.environ, **env}
        pixelflow = str(Path(sys.executable).with_name("pixelflow"))
        procs.append(subprocess.Popen([pixelflow, "api", "--port", str(api_port)], env=full_env))
        procs.append(subprocess.Popen([pixelflow, "worker"], env=full_env))
        api = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="the API")
        code = asyncio.run(_demo_job(api, full_env))
        if keep_running:
            print(f"\nAPI: {api}  (OpenAPI: {api}/schema)   Ctrl-C stops everything.")
            for key in ("PIXELFLOW_DATABASE_URL", "PIXELFLOW_REDIS_URL", "PIXELFLOW_STORAGE"):
                print(f"  {key}={full_env.get(key, 's3')}")
            with contextlib.suppress(KeyboardInterrupt):
                procs[0].wait()
        return code
    finally:
        for p in procs:
            stop_process(p, grace=15)
        pg.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


async def create_client_with_key(database_url: str, name: str, key_name: str = "") -> tuple[Any, Any, str, str]:
    """A new client with one API key: (client, key record, the key, the webhook secret).
    For the demo, the tests and the benchmarks; operators use ``pixelflow clients|keys``."""
    from infra.db import open_pool
    from infra.repo import ClientRepo

    pool = await open_pool(database_url, max_size=1)
    try:
        repo = ClientRepo(pool)
        client, secret = await repo.create(name)
        key, plaintext = await repo.create_key(client.id, key_name)
    finally:
        await pool.close()
    return client, key, plaintext, secret


async def _demo_job(api: str, env: dict[str, str]) -> int:
    import json

    from devstack.receiver import WebhookReceiver
    from infra.webhooks import verify

    _, _, key, secret = await create_client_with_key(env["PIXELFLOW_DATABASE_URL"], "demo", "demo")
    print(f"created client 'demo' and an API key ({key[:10]}…)")
    spec = json.loads((ROOT / "examples" / "job.json").read_text())
    for variant in spec["pipeline"]:  # the demo has no asset store; keep the text watermark only
        if "steps" in variant:
            variant["steps"] = [s for s in variant["steps"] if not s.get("image")]
    with WebhookReceiver() as receiver:
        spec["webhook_url"] = receiver.url("/demo")
        async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            job = (await http.post("/v1/jobs", json=spec)).raise_for_status().json()
            print(f"POST /v1/jobs -> {job['id']} ({job['status']})")
            async with httpx.AsyncClient(timeout=30) as plain:
                data = (ROOT / "examples" / "sample.jpg").read_bytes()
                (await plain.put(job["upload"]["put"]["url"], content=data)).raise_for_status()
            print(f"PUT  original -> {job['upload']['put']['url'].split('?')[0]} ({len(data):,} bytes)")
            started = (await http.post(f"/v1/jobs/{job['id']}/start")).raise_for_status().json()
            print(f"POST /v1/jobs/{job['id']}/start -> {started['status']}")
            (delivery,) = await asyncio.to_thread(receiver.wait, "/demo", 1, 60.0)
            verify(secret, delivery.headers, delivery.body)
            event = json.loads(delivery.body)
            print(
                f"webhook {event['type']} received; signature verified ({delivery.headers['webhook-signature'][:16]}…)"
            )
            for v in event["data"]["variants"]:
                print(
                    f"  {v['id']:<12} {v['format']:<5} {v['width']}x{v['height']} {v['bytes']:,} bytes  {v['url'][:70]}…"
                )
            return 0 if event["type"] == "job.succeeded" else 1
