"""``pixelflow up``: the whole service on one machine, and one demo job through to a verified webhook."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from devstack.backing_services import ROOT, PostgresServer, RedisServer, free_port, stop_process

__all__ = ["DEFAULT_PORT", "DemoError", "create_client_with_key", "run_demo_stack"]


DEFAULT_PORT = 8000  # README's walk-through talks to this port


class DemoError(Exception):
    """``pixelflow up`` cannot go on; the message is the one line the user sees."""


def run_demo_stack(*, keep_running: bool = False, port: int | None = None) -> int:
    """``pixelflow up``: Redis and PostgreSQL (installed if absent), the API and a worker, local
    storage unless ``PIXELFLOW_STORAGE=s3`` is set, then one demo job through to a verified webhook.
    The API listens on ``port``; by default 8000, or a free port (said so) when 8000 is taken."""
    try:
        return _run(keep_running=keep_running, port=port)
    except DemoError as exc:
        print(f"pixelflow: {exc}", file=sys.stderr)
        return 1


def _run(*, keep_running: bool, port: int | None) -> int:
    import tempfile

    api_port = _api_port(port)
    _stop_on(signal.SIGINT, signal.SIGTERM)
    work = Path(tempfile.mkdtemp(prefix="pixelflow-up-"))
    os.chmod(work, 0o755)  # noqa: S103 - PostgreSQL runs as its own user and must reach its data dir
    redis, pg = RedisServer(work / "redis"), PostgresServer(work / "pg")
    procs: list[subprocess.Popen] = []
    try:
        env = _environment(work, redis, pg, api_port)  # checked before anything is installed or started
        _start_services(redis, pg)
        full_env = {**os.environ, **env}
        pixelflow = str(Path(sys.executable).with_name("pixelflow"))
        procs.append(subprocess.Popen([pixelflow, "api", "--port", str(api_port)], env=full_env))
        procs.append(subprocess.Popen([pixelflow, "worker"], env=full_env))
        api = f"http://127.0.0.1:{api_port}"
        _wait_ready(api, procs[0])
        code, key = asyncio.run(_demo_job(api, full_env))
        if keep_running:
            _print_connection(api, key, full_env)
            with contextlib.suppress(KeyboardInterrupt):
                procs[0].wait()
        return code
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        for p in procs:
            stop_process(p, grace=15)
        if (pg.data_dir / "pgdata").exists():  # started (or half started); never when refused up front
            pg.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


def _stop_on(*signals: signal.Signals) -> None:
    """Ctrl-C and a plain ``kill`` both end ``up`` through its clean-up. Explicitly: a shell script's
    ``&`` starts it with SIGINT ignored, and SIGTERM would otherwise skip the clean-up entirely."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, stop)


def _start_services(redis: RedisServer, pg: PostgresServer) -> None:
    from infra.db import migrate

    try:
        if shutil.which("redis-server") is None or not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            print("installing Redis and PostgreSQL ...", flush=True)
            subprocess.run(["/bin/bash", str(ROOT / "build" / "services.sh"), "--no-localstack"], check=True)
        redis.start()
        pg.start()
        migrate(pg.url)
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        command = Path(str(exc.cmd[1] if exc.cmd[0] == "/bin/bash" else exc.cmd[0])).name
        raise DemoError(f"{command} failed (exit code {exc.returncode})" + (f": {said[-1]}" if said else "")) from None
    except (RuntimeError, TimeoutError) as exc:
        raise DemoError(str(exc)) from None


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _api_port(requested: int | None) -> int:
    """The port asked for, or 8000; only the default falls back, since README's 8000 is a
    convenience while a port given with --port is a decision."""
    if requested is not None:
        if _port_taken(requested):
            raise DemoError(f"port {requested} is in use; choose another with --port")
        return requested
    if not _port_taken(DEFAULT_PORT):
        return DEFAULT_PORT
    port = free_port()
    print(f"port {DEFAULT_PORT} is in use; the API listens on {port} instead (--port chooses)", flush=True)
    return port


def _environment(work: Path, redis: RedisServer, pg: PostgresServer, api_port: int) -> dict[str, str]:
    """The stack's ``PIXELFLOW_*`` variables over the user's, validated as the servers will."""
    from infra.settings import SettingsError, load_settings

    env = {
        "PIXELFLOW_DATABASE_URL": pg.url,
        "PIXELFLOW_REDIS_URL": redis.url,
        "PIXELFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true",  # the demo receiver listens on loopback
        "PIXELFLOW_SIGNUP": "open",  # a stack on one's own machine: anyone at it may make an account
        "PIXELFLOW_LOG_FORMAT": "text",
        "PIXELFLOW_LOG_LEVEL": "WARNING",
    }
    if os.environ.get("PIXELFLOW_STORAGE", "local") == "local":
        env |= {
            "PIXELFLOW_STORAGE": "local",
            "PIXELFLOW_LOCAL_STORAGE_DIR": str(work / "objects"),
            "PIXELFLOW_URL_SIGNING_SECRET": os.urandom(16).hex(),
        }
    try:
        settings = load_settings({**os.environ, **env})
    except SettingsError as exc:
        raise DemoError(str(exc)) from None
    if settings.storage == "s3":
        _require_s3(settings)
    return env


def _require_s3(settings: Any) -> None:
    """Refuse in one line, before starting anything, when the S3 asked for is not there: otherwise
    the API never becomes ready and the user reads pages of retries from its start-up."""
    endpoint = settings.s3_endpoint
    host, _, port = endpoint.rpartition(":")
    named = "PIXELFLOW_S3_ENDPOINT" + ("" if "PIXELFLOW_S3_ENDPOINT" in os.environ else ", unset, so its default")
    advice = "start MinIO or LocalStack there, or unset PIXELFLOW_STORAGE to keep objects in a local directory"
    try:
        socket.create_connection(
            (host or endpoint, int(port) if port else 443 if settings.s3_secure else 80), timeout=2
        ).close()
    except (OSError, ValueError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or "no answer"
        raise DemoError(
            f"PIXELFLOW_STORAGE=s3, but S3 at {endpoint} ({named}) cannot be reached: {reason}; {advice}"
        ) from None
    from minio.error import MinioException, S3Error

    from infra.storage import StorageUnavailable, open_store

    try:  # what the API and worker do first on start-up, so they cannot fail at it afterwards
        asyncio.run(open_store(settings).ensure_bucket())
    except S3Error as exc:
        raise DemoError(f"S3 at {endpoint} refused bucket {settings.s3_bucket!r}: {exc.code}: {exc.message}") from None
    except (MinioException, StorageUnavailable) as exc:
        reason = str(exc).split(";")[0] or type(exc).__name__
        raise DemoError(f"S3 at {endpoint} does not answer like S3 ({reason}); {advice}") from None


def _wait_ready(api: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the API exited with code {proc.returncode} while starting (its output is above)")
        try:
            response = httpx.get(f"{api}/readyz", timeout=1)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise DemoError(f"the API at {api} was not ready after {timeout:g} s (GET /readyz: {last})")


def _print_connection(api: str, key: str, env: dict[str, str]) -> None:
    """The one place PixelFlow prints a whole API key: the demo client's, so the user can drive the
    stack from another shell (``pixelflow submit``, ``pixelflow jobs``, README's curl walk-through)."""
    storage = env.get("PIXELFLOW_STORAGE", "s3")
    lines = [
        "",
        f"The stack is up: API {api} (OpenAPI: {api}/schema), storage {storage}. Ctrl-C stops everything.",
        f"Dashboard: {api}/dashboard (sign-up is open on this stack: create an account there)",
        f"  PIXELFLOW_DATABASE_URL={env['PIXELFLOW_DATABASE_URL']}",
        f"  PIXELFLOW_REDIS_URL={env['PIXELFLOW_REDIS_URL']}",
        "The demo client's API key is shown this once. In another shell, paste:",
        "",
        f"export PIXELFLOW_API_URL={shlex.quote(api)} PIXELFLOW_API_KEY={shlex.quote(key)}",
        f"API={shlex.quote(api)}; KEY={shlex.quote(key)}",
        "",
        "then: pixelflow submit examples/job.json examples/sample.jpg --assets examples -o out",
        "      pixelflow jobs list    (or README's curl walk-through, which uses $API and $KEY)",
    ]
    print("\n".join(lines), flush=True)


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


async def _demo_job(api: str, env: dict[str, str]) -> tuple[int, str]:
    """Create a client and key, run examples/job.json to its verified webhook: (exit code, the key)."""
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
            return (0 if event["type"] == "job.succeeded" else 1), key
