"""README's walk-through, run as written against the real stack (only the API URL, key, webhook
secret, signing key and receiver port filled in): create, upload, start, poll, download and a
verified webhook, for every variant of examples/job.json; then its signed image URLs (the
negotiated AVIF and the srcset the Python client signs)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import pyvips

from devstack.backing_services import free_port
from tests.integration.conftest import ROOT, Stack, Tenant, WorkerProcess

pytestmark = pytest.mark.integration


def walkthrough() -> str:
    block = re.search(r"```bash\n(API=http.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "README's walk-through block moved"
    return block.group(1)


def url_block() -> str:
    block = re.search(r"```bash\n(KID=sk_.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "README's image-URL block moved"
    return block.group(1)


def signing_key(stack: Stack, client: str) -> tuple[str, str]:
    """A signing key made the way README says: ``pixelflow clients signing-keys create``."""
    made = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pixelflow"), "clients", "signing-keys", "create", client, "--json"],
        env={**os.environ, **stack.env}, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    key = json.loads(made.stdout)
    return key["kid"], key["secret"]


def test_the_readme_walkthrough_downloads_a_variant_and_verifies_its_webhook(
    stack: Stack, tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    api = str(tenant.http.base_url).rstrip("/")
    script, port = walkthrough() + url_block(), free_port()
    kid, signing_secret = signing_key(stack, tenant.name)
    for placeholder, value in (
        ("KID=sk_...; SK=pfk_...", f"KID={kid}; SK={signing_secret}"),
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
    started, summary, verified, content_type, img, srcset = out.splitlines()
    done = json.loads(summary)
    expected = [v["id"] for v in json.loads((ROOT / "examples" / "job.json").read_text())["pipeline"]]
    assert started == "queued" and done["status"] == "succeeded", out
    assert sorted(v["id"] for v in done["variants"]) == sorted(expected)
    assert verified == f"verified: job.succeeded {expected}"  # the README says what it prints
    assert verified in (ROOT / "README.md").read_text()
    large = next(v for v in done["variants"] if v["id"] == "large")
    downloaded = (tmp_path / "large.webp").read_bytes()
    assert len(downloaded) == large["bytes"] and downloaded[8:12] == b"WEBP"

    # the image URL: negotiated to AVIF for a browser that takes it, at the width asked
    assert content_type.lower().split(":", 1)[1].strip() == "image/avif", content_type
    hero = pyvips.Image.new_from_file(str(tmp_path / "hero"))
    assert hero.get("vips-loader").startswith("heifload") and hero.width == 640
    # the printed <img>: every URL of its src and srcset is signed and served at its width
    src = re.search(r'src="([^"]+)"', img)
    widths = re.findall(r"(\S+) (\d+)w", srcset.split('srcset="', 1)[1])
    assert src is not None and [int(w) for _, w in widths] == [320, 640, 1024], (img, srcset)
    for url, width in [(src.group(1), 640), *((u, int(w)) for u, w in widths)]:
        answer = httpx.get(url, headers={"Accept": "image/webp,*/*"}, timeout=60)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp", answer.text
        assert pyvips.Image.new_from_buffer(answer.content, "").width == width
