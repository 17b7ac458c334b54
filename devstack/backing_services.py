"""Run PixelFlow's backing services as child processes on loopback: Redis, PostgreSQL and
LocalStack's S3. Used by ``pixelflow up`` (``devstack.demo``), the test suite and the benchmarks.
Each server gets its own data directory and a free port and is stopped by PID (KILL as fallback)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "ROOT",
    "LocalStackS3",
    "PostgresServer",
    "RedisServer",
    "free_port",
    "stop_process",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} did not become ready in {timeout:g} s ({last})")


def stop_process(proc: subprocess.Popen | None, *, grace: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class RedisServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (run build/services.sh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ping, timeout=30, what="Redis")  # as long as pg_ctl waits: a busy machine starts slowly
        return self

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        stop_process(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError("PostgreSQL is not installed (run build/services.sh)")
    return binary


@dataclass
class PostgresServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    database: str = "pixelflow"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self, *cmd: str) -> list[str]:
        # initdb refuses to run as root; run the server as the postgres user when we are root.
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def start(self) -> PostgresServer:
        pgdata = self.data_dir / "pgdata"
        if os.geteuid() == 0:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(self.data_dir, "postgres", "postgres")
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                self._as_owner(_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
                check=True,
                capture_output=True,
            )
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            self._as_owner(
                _pg_bin("pg_ctl"),
                "-D",
                str(pgdata),
                "-w",
                "-t",
                "30",
                "-l",
                str(self.data_dir / "log"),
                "-o",
                options,
                "start",
            ),
            check=True,
            capture_output=True,
        )
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._as_owner(_pg_bin("pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-m", mode, "-w", "stop"),
            check=False,
            capture_output=True,
        )

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class LocalStackS3:
    """LocalStack's S3 in host mode with SigV4 validation on: tampered or expired presigned URLs are refused."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    venv: Path = ROOT / ".venv-localstack"
    proc: subprocess.Popen | None = None
    access_key: str = "test"
    secret_key: str = "test"  # LocalStack's fixed credentials for account 000000000000

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalStackS3:
        python = self.venv / "bin" / "python"
        if not python.exists():
            raise RuntimeError(f"LocalStack is not installed in {self.venv} (run build/services.sh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.data_dir),
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "LOCALSTACK_HOST": f"127.0.0.1:{self.port}",
            "SERVICES": "s3",
            "S3_SKIP_SIGNATURE_VALIDATION": "0",
            "DNS_ADDRESS": "0",
            "EAGER_SERVICE_LOADING": "1",
            "PERSISTENCE": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "LOCALSTACK_VOLUME_DIR": str(self.data_dir / "volume"),
            "FILESYSTEM_ROOT": str(self.data_dir / "fs"),
        }
        self.log = (self.data_dir / "localstack.log").open("ab")
        self.proc = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(self._healthy, timeout=90, what="LocalStack S3", interval=0.3)
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"LocalStack exited with {self.proc.returncode}; see {self.data_dir / 'localstack.log'}")
        r = httpx.get(f"http://{self.endpoint}/_localstack/health", timeout=1)
        return r.status_code == 200 and r.json().get("services", {}).get("s3") in ("running", "available")

    def stop(self) -> None:
        stop_process(self.proc, grace=10)

    def restart(self) -> None:
        self.stop()
        self.start()
