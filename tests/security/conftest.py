"""The security group runs against the same real services as the integration tests (the
session fixtures in tests/conftest.py: one stack per session), plus ``pixelflow api`` as a real
child process for the tests that are about how the server is run."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.backing_services import free_port, wait_for
from tests.integration.conftest import PIXELFLOW, ROOT, Stack

# Every hostile request the group sends, with the status it got: one test asserts that none of
# them was answered with a 5xx, and the report counts them.
CORPUS: list[tuple[str, int]] = []


def record(what: str, status: int) -> int:
    CORPUS.append((what, status))
    return status


class ApiProcess:
    """``pixelflow api`` exactly as an operator runs it: its own process, its own logs."""

    def __init__(self, env: dict[str, str], log: Path, **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "PIXELFLOW_PUBLIC_BASE_URL": self.url, **extra_env}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> ApiProcess:
        out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [PIXELFLOW, "api", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_for(
            lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, timeout=60, what="pixelflow api"
        )
        return self

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def api_process(stack: Stack, tmp_path: Path) -> Iterator[ApiProcess]:
    proc = ApiProcess(stack.env, tmp_path / "api.log").start()
    yield proc
    proc.stop()
