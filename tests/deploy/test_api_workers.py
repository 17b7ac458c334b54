"""``pixelflow api --workers 2`` reports one coherent set of metrics (prometheus_client's
multiprocess mode): a counter that both processes incremented is reported once, with the sum,
by every scrape, whichever process answers it, and by the supervisor's separate listener."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from devstack.backing_services import free_port, wait_for
from tests.integration.conftest import PIXELFLOW, ROOT, Stack
from tests.timing import SLACK

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-" + "w" * 24
HEALTHZ = re.compile(r'^pixelflow_http_requests_total\{[^}]*path="/healthz"[^}]*\} (\S+)$', re.M)


def _healthz_count(text: str) -> float:
    (value,) = HEALTHZ.findall(text)  # exactly one series: not one per process
    return float(value)


def _per_process(directory: Path) -> dict[int, float]:
    """/healthz requests counted by each process, read from its own sample file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for metric in MultiProcessCollector.merge([str(path)]):
            for sample in metric.samples:
                if sample.name == "pixelflow_http_requests_total" and sample.labels.get("path") == "/healthz":
                    counts[pid] = counts.get(pid, 0) + sample.value
    return counts


def test_two_api_processes_report_one_whole_counter(stack: Stack, tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    # a file left by an earlier run (a pid that no longer exists) must not be counted again
    (directory / "counter_999999.db").write_bytes(b"\0" * 16)
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **stack.env,
        "PIXELFLOW_PUBLIC_BASE_URL": url,
        "PIXELFLOW_METRICS_TOKEN": TOKEN,
        "PIXELFLOW_API_METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [PIXELFLOW, "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, timeout=60, what="api --workers 2")
        assert not (directory / "counter_999999.db").exists()

        # new connections, many at once, until both processes have answered some
        def hit(_: int) -> int:
            return httpx.get(f"{url}/healthz", timeout=10).status_code

        sent = 1  # the readiness poll above counted too, once it answered 200
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for _ in range(20):
                assert set(pool.map(hit, range(40))) == {200}
                sent += 40
                counts = _per_process(directory)
                if len(counts) == 2 and all(counts.values()):
                    break
        # the middleware counts a request as its response goes out: the last few may land a moment later
        wait_for(lambda: sum(_per_process(directory).values()) == sent, timeout=3 * SLACK, what="every request counted")
        counts = _per_process(directory)
        assert len(counts) == 2 and all(v > 0 for v in counts.values()), counts
        total = sum(counts.values())

        auth = {"Authorization": f"Bearer {TOKEN}"}
        scrapes = [httpx.get(f"{url}/metrics", headers=auth, timeout=10).text for _ in range(6)]
        assert {_healthz_count(s) for s in scrapes} == {total}, "a scrape saw one process's share"
        listener = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert _healthz_count(listener) == total
        print(f"\n[--workers 2] /healthz per process {sorted(counts.values())}, reported {total:g}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, (tmp_path / "api.log").read_text()[-2000:]
