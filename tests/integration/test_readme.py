"""README's walk-through, run as written against the real stack (only the API URL, key, webhook
secret and receiver port filled in): create, upload, start, poll, download and a verified
webhook, for every variant of examples/job.json."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from devstack.backing_services import free_port
from tests.integration.conftest import ROOT, Tenant, WorkerProcess

pytestmark = pytest.mark.integration


def walkthrough() -> str:
    block = re.search(r"```bash\n(API=http.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "README's walk-through block moved"
    return block.group(1)


def test_the_readme_walkthrough_downloads_a_variant_and_verifies_its_webhook(
    tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    api = str(tenant.http.base_url).rstrip("/")
    script, port = walkthrough(), free_port()
    for placeholder, value in (
        ("API=http://127.0.0.1:8000; KEY=pf_...", f"API={api}; KEY={tenant.key}"),
        ("SECRET=whsec_...", f"SECRET={tenant.secret}"),
        ("--port 9000", f"--port {port}"),
        ("http://127.0.0.1:9000/", f"http://127.0.0.1:{port}/"),
    ):
        assert placeholder in script, placeholder
        script = script.replace(placeholder, value)
    # run where the README runs it, the repository's root, without writing into it
    for name in ("examples", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the receiver it starts in the background goes with it
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    started, summary, verified = out.splitlines()
    done = json.loads(summary)
    expected = [v["id"] for v in json.loads((ROOT / "examples" / "job.json").read_text())["pipeline"]]
    assert started == "queued" and done["status"] == "succeeded", out
    assert sorted(v["id"] for v in done["variants"]) == sorted(expected)
    assert verified == f"verified: job.succeeded {expected}"  # the README says what it prints
    assert verified in (ROOT / "README.md").read_text()
    large = next(v for v in done["variants"] if v["id"] == "large")
    downloaded = (tmp_path / "large.webp").read_bytes()
    assert len(downloaded) == large["bytes"] and downloaded[8:12] == b"WEBP"
