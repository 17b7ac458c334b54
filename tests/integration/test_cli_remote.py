"""``pixelflow submit`` and ``pixelflow jobs``, run as a user runs them (the installed entry point
as a subprocess) against the real API, worker, PostgreSQL, Redis and LocalStack S3."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from tests.integration.conftest import PIXELFLOW, ROOT, ApiServer, Tenant, WorkerProcess
from tests.timing import SLACK

pytestmark = pytest.mark.integration

THUMB = {"version": 1, "pipeline": [{"id": "t", "action": "resize", "width": 40, "format": "webp"}]}


def env_for(api_url: str | None, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}
    if api_url is not None:
        env["PIXELFLOW_API_URL"] = api_url
    if key is not None:
        env["PIXELFLOW_API_KEY"] = key
    return env


def pixelflow(
    env: dict[str, str], *args: str, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIXELFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec))
    return path


async def jobs_of(t: Tenant) -> list[dict]:
    return (await t.http.get("/v1/jobs")).json()["jobs"]


async def test_submit_a_tree_downloads_every_variant_with_runs_layout(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    tree = tmp_path / "shots"
    (tree / "2024" / "may").mkdir(parents=True)
    (tree / "2025").mkdir()
    (tree / "2024" / "may" / "beach.jpg").write_bytes(encode(photo(160, 120, seed=1), ".jpg"))
    (tree / "2025" / "beach.png").write_bytes(encode(photo(120, 160, seed=2), ".png"))
    (tree / "notes.txt").write_text("not an image")
    spec = write_spec(tmp_path / "spec.json", THUMB)
    out = tmp_path / "out"
    result = pixelflow(env_for(api.url, tenant.key), "submit", str(spec), str(tree), "-o", str(out), "-j", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "2024/may/beach/t.webp",
        "2025/beach/t.webp",
    ]
    assert pyvips.Image.new_from_file(str(out / "2025" / "beach" / "t.webp")).width == 40
    for line in (f"{tree}/2024/may/beach.jpg: job ", f"{tree}/2025/beach.png: job ", f"{out}/2025/beach/t.webp  webp"):
        assert line in result.stdout
    assert result.stderr == "2/2 images processed, 0 failed\n"
    assert {j["status"] for j in await jobs_of(tenant)} == {"succeeded"}


async def test_failed_jobs_exit_1_naming_job_file_and_reason_and_json_has_every_field(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    # One spec, three files: cropping at x=300 works on the wide image only.
    spec = write_spec(
        tmp_path / "crop.json",
        {"version": 1, "pipeline": [{"id": "c", "action": "crop", "left": 300, "top": 0, "width": 8, "height": 8}]},
    )
    (tmp_path / "wide.jpg").write_bytes(encode(photo(400, 100, seed=3), ".jpg"))
    (tmp_path / "narrow.jpg").write_bytes(encode(photo(100, 100, seed=4), ".jpg"))
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    files = [str(tmp_path / n) for n in ("wide.jpg", "narrow.jpg", "junk.jpg")]
    out = tmp_path / "out"
    result = pixelflow(env_for(api.url, tenant.key), "submit", str(spec), *files, "-o", str(out), "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)  # stdout is one JSON document
    assert (doc["total"], doc["succeeded"], doc["failed"]) == (3, 1, 2)
    by_name = {Path(r["input"]).name: r for r in doc["results"]}
    assert set(by_name) == {"wide.jpg", "narrow.jpg", "junk.jpg"}
    wide, narrow, junk = by_name["wide.jpg"], by_name["narrow.jpg"], by_name["junk.jpg"]
    assert wide["status"] == "succeeded" and wide["error"] is None
    assert wide["written"] == [
        {"variant": "c", "path": str(out / "wide" / "c.jpg"), "format": "jpeg", "width": 8, "height": 8,
         "bytes": (out / "wide" / "c.jpg").stat().st_size, "quality": 80, "frames": 1}
    ]  # fmt: skip
    assert narrow["status"] == "failed" and narrow["error"]["code"] == "invalid_operation" and narrow["written"] == []
    assert junk["error"]["code"] == "unsupported_format"  # refused at /start: the job's state is the API's
    assert junk["status"] == (await tenant.http.get(f"/v1/jobs/{junk['job_id']}")).json()["status"]
    assert uuid.UUID(wide["job_id"]) and uuid.UUID(narrow["job_id"]) and uuid.UUID(junk["job_id"])
    assert wide["seconds"] > 0
    failures = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert len(failures) == 2
    narrow_line = next(line for line in failures if "narrow.jpg" in line)
    assert f"{files[1]}: FAILED invalid_operation: " in narrow_line
    assert narrow_line.endswith(f"(job {narrow['job_id']}, failed)")
    junk_line = next(line for line in failures if "junk.jpg" in line)
    assert f"{files[2]}: FAILED unsupported_format: Unsupported image format: " in junk_line
    assert junk_line.endswith(f"(job {junk['job_id']}, {junk['status']})")
    assert not (out / "narrow").exists() and not (out / "junk").exists()
    assert "Traceback" not in result.stderr


async def test_collisions_and_an_invalid_spec_are_refused_before_any_upload(
    api: ApiServer, tenant: Tenant, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "photo.jpg").write_bytes(encode(photo(64, 48, seed=1), ".jpg"))
    (b / "photo.jpg").write_bytes(encode(photo(64, 48, seed=2), ".jpg"))
    spec = write_spec(tmp_path / "spec.json", THUMB)
    env = env_for(api.url, tenant.key)
    out = tmp_path / "o"
    result = pixelflow(env, "submit", str(spec), str(a / "photo.jpg"), str(b / "photo.jpg"), "-o", str(out))
    assert result.returncode == 2
    assert result.stderr == (
        "pixelflow: outputs would overwrite each other; rename or run separately:\n"
        f"  {a / 'photo.jpg'} and {b / 'photo.jpg'} would both write photo/\n"
    )
    bad = write_spec(
        tmp_path / "bad.json",
        {"version": 1, "pipeline": [{"id": "x", "action": "resize", "width": 0}, {"id": "y", "action": "blur"}]},
    )
    result = pixelflow(env, "submit", str(bad), str(a / "photo.jpg"), "-o", str(out), "--json")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "pixelflow: Unprocessable request: the job spec is invalid",
        "  $.pipeline[0].width: Expected int >= 1",
        "  $.pipeline[1]: Object missing required field 'sigma'",
    ]
    assert await jobs_of(tenant) == [] and not out.exists()  # nothing created, uploaded or written


async def test_watermark_assets_are_uploaded_from_assets(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    env = env_for(api.url, tenant.key)
    out = tmp_path / "out"
    missing = pixelflow(env, "submit", "examples/job.json", "examples/sample.jpg", "-o", str(out), "--assets", "bench")
    assert (missing.returncode, missing.stderr) == (
        2,
        "pixelflow: the spec's watermark image 'logo.png' is not in bench\n",
    )
    result = pixelflow(
        env, "submit", "examples/job.json", "examples/sample.jpg", "-o", str(out), "--assets", "examples"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "sample").iterdir()) == [
        "card.jpg", "large.webp", "mono.png", "square.webp", "thumb_small.webp",
    ]  # fmt: skip


async def test_jobs_list_get_cancel_in_text_and_json(api: ApiServer, tenant: Tenant) -> None:
    env = env_for(api.url, tenant.key)
    made = [(await tenant.http.post("/v1/jobs", json=THUMB)).json()["id"] for _ in range(3)]
    listing = pixelflow(env, "jobs", "list", "--limit", "2", "--json")
    assert listing.returncode == 0, listing.stderr
    assert [j["id"] for j in json.loads(listing.stdout)["jobs"]] == made[::-1][:2]  # newest first
    text = pixelflow(env, "jobs", "list").stdout.splitlines()
    assert [line.split()[:2] for line in text] == [[i, "created"] for i in made[::-1]]

    canceled = pixelflow(env, "jobs", "cancel", made[0], "--json")
    assert canceled.returncode == 0 and json.loads(canceled.stdout)["status"] == "canceled"
    again = pixelflow(env, "jobs", "cancel", made[0])
    assert (again.returncode, again.stdout, again.stderr) == (1, "", "pixelflow: Conflict: the job already canceled\n")
    only = pixelflow(env, "jobs", "list", "--status", "canceled", "--json")
    assert [j["id"] for j in json.loads(only.stdout)["jobs"]] == [made[0]]

    got = pixelflow(env, "jobs", "get", made[1], "--json")
    job = json.loads(got.stdout)
    assert job["id"] == made[1] and job["status"] == "created" and job["attempts"] == 0
    described = pixelflow(env, "jobs", "get", made[1]).stdout
    assert described.startswith(f"job       {made[1]}\nstatus    created\n")
    gone = pixelflow(env, "jobs", "get", str(uuid.uuid4()))
    assert (gone.returncode, gone.stderr) == (1, "pixelflow: Not found: no such job\n")
    bad = pixelflow(env, "jobs", "get", "not-a-uuid")
    assert bad.returncode == 2 and "invalid UUID value" in bad.stderr


async def test_the_key_comes_from_the_environment_or_a_file_never_a_flag(
    api: ApiServer, tenant: Tenant, tmp_path: Path
) -> None:
    no_key = pixelflow(env_for(api.url, None), "jobs", "list")
    assert (no_key.returncode, no_key.stderr) == (
        2,
        "pixelflow: no API key: set PIXELFLOW_API_KEY or pass --api-key-file FILE\n",
    )
    key_file = tmp_path / "key"
    key_file.write_text(tenant.key + "\n")
    from_file = pixelflow(env_for(None, None), "jobs", "list", "--api", api.url, "--api-key-file", str(key_file))
    assert from_file.returncode == 0, from_file.stderr
    wrong = pixelflow(env_for(api.url, "pf_wrong"), "jobs", "list", "--json")
    assert (wrong.returncode, wrong.stdout) == (1, "")
    assert wrong.stderr.startswith("pixelflow: Missing or invalid API key") and wrong.stderr.count("\n") == 1
    assert "pf_wrong" not in wrong.stderr
    for flag in ("--api-key", "--key"):
        refused = pixelflow(env_for(api.url, None), "jobs", "list", flag, tenant.key)
        assert refused.returncode == 2 and tenant.key not in refused.stderr, flag
        assert "is not accepted" in refused.stderr and "set PIXELFLOW_API_KEY" in refused.stderr
    # nor taken as an abbreviation of --api-key-file (a key read as a file name)
    abbreviated = pixelflow(env_for(api.url, None), "jobs", "list", "--api-key-f", tenant.key)
    assert abbreviated.returncode == 2 and "unrecognized arguments" in abbreviated.stderr


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An API that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_unreachable_api_is_one_line_at_once(tmp_path: Path, silent_api: str) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(encode(photo(40, 30), ".png"))
    spec = write_spec(tmp_path / "spec.json", THUMB)
    refused = f"http://127.0.0.1:{free_port()}"
    cases = [
        (refused, ["jobs", "list"], f"pixelflow: cannot reach {refused}: Connection refused\n"),
        (refused, ["submit", str(spec), str(image), "-o", str(tmp_path / "o")], f"pixelflow: cannot reach {refused}: Connection refused\n"),
        ("http://no-such-host.invalid:8000", ["jobs", "get", str(uuid.uuid4()), "--json"], None),
        (silent_api, ["jobs", "list", "--timeout", "0.5"], f"pixelflow: no answer from {silent_api} within 0.5 s\n"),
    ]  # fmt: skip
    for url, args, expected in cases:
        # Failing fast is the contract: the command ends within its own --timeout (0.5 s here, or
        # none for a refused connection) plus starting Python on a loaded machine, well before the
        # default --timeout of 30 s that a call which hangs or retries would wait out.
        result = pixelflow(env_for(url, "pf_x"), *args, timeout=0.5 + SLACK)
        assert (result.returncode, result.stdout) == (1, ""), args
        if expected is None:
            assert result.stderr.startswith("pixelflow: cannot reach http://no-such-host.invalid:8000: ")
            assert result.stderr.count("\n") == 1
        else:
            assert result.stderr == expected, args
    assert not (tmp_path / "o").exists()


async def test_progress_is_a_bar_on_a_terminal(
    api: ApiServer, tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    for i in range(3):
        (tmp_path / f"in{i}.jpg").write_bytes(encode(photo(80, 60, seed=i), ".jpg"))
    spec = write_spec(tmp_path / "spec.json", THUMB)
    files = [str(tmp_path / f"in{i}.jpg") for i in range(3)]
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PIXELFLOW, "submit", str(spec), *files, "-o", str(tmp_path / "out"), "--json"],
            env=env_for(api.url, tenant.key), stdout=subprocess.PIPE, stderr=secondary, cwd=ROOT,
        )  # fmt: skip
        os.close(secondary)
        stdout, _ = proc.communicate(timeout=120)
        terminal = b""
        deadline = time.monotonic() + SLACK  # the other end is closed: this only stops a hung test
        while time.monotonic() < deadline:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the other end closed: everything is read
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0
    assert json.loads(stdout)["succeeded"] == 3
    shown = terminal.decode()
    assert "\r\x1b[2K[" in shown and "] 3/3  0 uploading, 0 processing" in shown
    assert shown.count(": job ") == 3  # one result line per file above the bar
