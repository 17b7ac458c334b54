"""``pixelflow up --keep-running`` as a newcomer runs it: its printed export lines are enough to
drive the stack with ``pixelflow submit``, and Ctrl-C (SIGINT) stops every piece of it cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from devstack.backing_services import free_port
from tests.integration.conftest import PIXELFLOW, ROOT

pytestmark = pytest.mark.integration


def _lines(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_keep_running_prints_the_exports_that_submit_uses_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}  # local storage, as a newcomer
    err = (tmp_path / "up.err").open("w+")
    up = subprocess.Popen(
        [PIXELFLOW, "up", "--keep-running", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        printed: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_lines, args=(up.stdout, printed), daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + 180
        while not any(line.startswith("API=") for line in seen):
            line = printed.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"up exited early: {''.join(seen)}"
            seen.append(line)
        out = "".join(seen)
        exported = re.search(r"^export PIXELFLOW_API_URL=(\S+) PIXELFLOW_API_KEY=(pf_\S+)$", out, re.M)
        assert exported is not None, out
        url, key = exported.groups()
        assert url == f"http://127.0.0.1:{port}"
        assert f"API={url}; KEY={key}\n" in out  # README's walk-through variables
        assert out.count(key) == 2 and f"({key[:10]}…)" in out  # the demo itself shows it truncated
        assert f"Dashboard: {url}/dashboard (sign-up is open on this stack" in out
        _dashboard_runs_the_example(url)

        result = subprocess.run(
            [PIXELFLOW, "submit", "examples/job.json", "examples/sample.jpg", "--assets", "examples",
             "-o", str(tmp_path / "out"), "--json"],
            env=env | {"PIXELFLOW_API_URL": url, "PIXELFLOW_API_KEY": key},
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in (tmp_path / "out" / "sample").iterdir()) == [
            "card.jpg", "large.webp", "mono.png", "square.webp", "thumb_small.webp",
        ]  # fmt: skip

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        assert not _port_open(port)  # the API went with it
        err.seek(0)
        assert "Traceback" not in err.read()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)  # its own session: up, the API, the worker, Redis, PostgreSQL
            up.wait(timeout=10)
        err.close()


def test_a_port_given_with_port_must_be_free(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}
        result = subprocess.run(
            [PIXELFLOW, "up", "--port", str(port)], env=env, capture_output=True, text=True, timeout=30, check=False
        )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"pixelflow: port {port} is in use; choose another with --port\n"


def test_s3_storage_that_is_not_there_is_one_line_before_anything_starts() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}
    env |= {"PIXELFLOW_STORAGE": "s3", "PIXELFLOW_S3_ENDPOINT": endpoint}
    result = subprocess.run(
        [PIXELFLOW, "up", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"pixelflow: PIXELFLOW_STORAGE=s3, but S3 at {endpoint} (PIXELFLOW_S3_ENDPOINT) cannot be reached: "
        "Connection refused; start MinIO or LocalStack there, or unset PIXELFLOW_STORAGE to keep objects in a "
        "local directory\n"
    )
    del env["PIXELFLOW_S3_ENDPOINT"]
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 9000)) == 0:
            return  # something listens on the default endpoint here
    result = subprocess.run(
        [PIXELFLOW, "up", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "pixelflow: PIXELFLOW_STORAGE=s3, but S3 at 127.0.0.1:9000 (PIXELFLOW_S3_ENDPOINT, unset, so its default) "
        "cannot be reached: Connection refused;"
    )


def test_a_taken_8000_falls_back_to_a_free_port_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """README's port is a convenience: when something holds 8000, `up` says so and uses another."""
    from devstack.demo import DEFAULT_PORT, _api_port

    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen(1)
        except OSError:
            pass  # something else already holds it: the same fallback applies
        port = _api_port(None)
    assert port != DEFAULT_PORT
    assert (
        capsys.readouterr().out
        == f"port {DEFAULT_PORT} is in use; the API listens on {port} instead (--port chooses)\n"
    )


def _dashboard_runs_the_example(url: str) -> None:
    """docs/dashboard.md on up's stack (local storage: uploads go to the API's own signed
    URLs): sign up, pick examples/sample.jpg, start the default example spec, see its variants."""
    from playwright.sync_api import expect, sync_playwright

    from devstack.browser import chromium

    if chromium() is None:
        pytest.skip("chromium is not installed (build/services.sh installs it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(60_000)  # a hang guard: a loaded machine slows Chromium down
        page.goto(f"{url}/dashboard/signup")
        expect(page.locator("body[data-ready]")).to_have_count(1)  # the script has wired the form
        page.get_by_label("Email").fill("newcomer@example.com")
        page.get_by_label("Password").fill("newcomer passphrase")
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{url}/dashboard")
        page.get_by_role("link", name="New job").first.click()
        expect(page).to_have_url(f"{url}/dashboard/new")
        expect(page.locator("body[data-ready]")).to_have_count(1)
        page.get_by_label("Choose images").set_input_files(str(ROOT / "examples" / "sample.jpg"))
        expect(page.locator("#spec-errors")).to_have_text("The spec is valid.")
        page.get_by_role("button", name="Upload and start").click()
        expect(page.locator("#summary .status")).to_have_text("succeeded", timeout=60_000)
        images = page.locator("li.variant img")
        expect(images).to_have_count(2)  # the default example: large and thumb
        for i in range(2):
            expect(images.nth(i)).to_have_js_property("complete", True)
            assert images.nth(i).evaluate("i => i.naturalWidth") == int(images.nth(i).get_attribute("data-width"))
        browser.close()
