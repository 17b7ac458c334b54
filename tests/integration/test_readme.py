"""README's curl walk-through, run as written (only the API URL and key filled in) against the
real stack: it must end with the job succeeded and every variant of examples/job.json."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.integration.conftest import ROOT, Tenant, WorkerProcess, wait_status

pytestmark = pytest.mark.integration


async def test_the_readme_walkthrough_ends_in_a_succeeded_job(tenant: Tenant, worker: WorkerProcess) -> None:
    block = re.search(r"```bash\n(API=http.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "README's walk-through block moved"
    api = str(tenant.http.base_url).rstrip("/")
    script = block.group(1).replace("API=http://127.0.0.1:8000; KEY=pf_...", f"API={api}; KEY={tenant.key}")
    script += '\necho "JOB=$(echo "$job" | jq -r .id)"\n'
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    job_id = re.search(r"JOB=([0-9a-f-]{36})", out.stdout)
    assert job_id is not None, out.stdout
    final = await wait_status(tenant, job_id.group(1), {"succeeded", "failed", "canceled"}, timeout=60)
    assert final["status"] == "succeeded", final
    expected = {v["id"] for v in json.loads((ROOT / "examples" / "job.json").read_text())["pipeline"]}
    assert {v["id"] for v in final["variants"]} == expected
