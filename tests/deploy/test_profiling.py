"""A CPU profile of a live process without restarting it: py-spy (in the container image, and in
the dev extras here) attaches to a running ``pixelflow api`` and ``pixelflow worker`` by pid.
It needs ptrace rights over the target: root, or CAP_SYS_PTRACE (deploy/k8s/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, WorkerProcess
from tests.security.conftest import ApiProcess

pytestmark = pytest.mark.integration

PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def _py_spy(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([PY_SPY, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode and "Permission denied" in done.stderr:
        pytest.skip(f"no ptrace rights here (run as root or with CAP_SYS_PTRACE): {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return done


def test_py_spy_dumps_and_records_a_running_api_and_worker(stack: Stack, tmp_path: Path) -> None:
    api = ApiProcess(stack.env, tmp_path / "api.log").start()
    worker = WorkerProcess(stack.env, tmp_path / "worker.log").start()
    try:
        assert api.proc is not None and worker.proc is not None
        dump = _py_spy("dump", "--pid", str(api.proc.pid)).stdout
        assert "cmd_api (cli/operations.py" in dump, dump
        profile = tmp_path / "api.speedscope.json"
        _py_spy("record", "--pid", str(api.proc.pid), "--duration", "2", "--format", "speedscope", "-o", str(profile))
        assert json.loads(profile.read_text())["$schema"].startswith("https://www.speedscope.app/")
        dump = _py_spy("dump", "--subprocesses", "--pid", str(worker.proc.pid)).stdout
        assert "cmd_worker (cli/operations.py" in dump, dump
        assert "_child_main (pipeline/sandbox.py" in dump, dump  # --subprocesses reaches the engine children
    finally:
        worker.stop()
        api.stop()
