"""The ``pixelflow`` command, run as a user runs it (a subprocess of the installed entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pyvips

from devstack.imagegen import encode, photo
from tests.timing import SLACK

ROOT = Path(__file__).resolve().parents[2]
PIXELFLOW = str(Path(sys.executable).with_name("pixelflow"))


def pixelflow(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIXELFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_run_the_readme_example(tmp_path: Path) -> None:
    result = pixelflow("run", "examples/job.json", "examples/sample.jpg", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    spec = json.loads((ROOT / "examples" / "job.json").read_text())
    for variant in spec["pipeline"]:
        assert variant["id"] in result.stdout
    written = sorted(p.name for p in (tmp_path / "sample").iterdir())
    assert written == ["card.jpg", "large.webp", "mono.png", "square.webp", "thumb_small.webp"]
    card = pyvips.Image.new_from_file(str(tmp_path / "sample" / "card.jpg"))
    assert (card.width, card.height) == (800, 600)


def test_run_many_inputs_in_parallel_reports_progress_and_failures(tmp_path: Path) -> None:
    inputs = []
    for i in range(3):
        path = tmp_path / f"in{i}.png"
        path.write_bytes(encode(photo(120, 90, seed=i), ".png"))
        inputs.append(str(path))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"version": 1, "pipeline": [{"id": "t", "action": "resize", "width": 60}]}))
    result = pixelflow("run", str(spec), *inputs, str(bad), "-o", str(tmp_path / "out"), "-j", "2", "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)  # one document for the whole run, whatever order the inputs finished in
    assert (doc["total"], doc["succeeded"], doc["failed"]) == (4, 3, 1)
    assert [r["input"] for r in doc["results"]] == [*inputs, str(bad)]
    *good, failed = doc["results"]
    assert failed["error"]["code"] == "unsupported_format" and failed["written"] == []
    assert f"{bad}: FAILED unsupported_format" in result.stderr
    for i, record in enumerate(good):
        out = tmp_path / "out" / f"in{i}" / "t.png"
        assert out.is_file() and record["error"] is None
        assert record["written"] == [
            {"variant": "t", "path": str(out), "format": "png", "width": 60, "height": 45, "bytes": out.stat().st_size,
             "quality": None, "frames": 1}
        ]  # fmt: skip
        assert record["info"] is None  # only when the spec asks


def test_run_json_reports_quality_frames_and_the_described_source(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "version": 1, "info": {"placeholders": ["blurhash"]},
        "pipeline": [{"id": "small", "action": "resize", "width": 200, "format": "webp", "max_bytes": 1500}],
    }))  # fmt: skip
    result = pixelflow("run", str(spec), "examples/sample.jpg", "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)["results"]
    (written,) = record["written"]
    assert written["bytes"] <= 1500 and written["quality"] < 80 and written["frames"] == 1
    assert (record["info"]["format"], record["info"]["width"]) == ("jpeg", 1200) and record["info"]["blurhash"]


def test_run_json_with_one_input_and_refusals(tmp_path: Path) -> None:
    result = pixelflow("run", "examples/job.json", "examples/sample.jpg", "-o", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["total"], doc["succeeded"], doc["failed"]) == (1, 1, 0)
    assert {w["variant"] for w in doc["results"][0]["written"]} == {"large", "card", "thumb_small", "square", "mono"}
    # refused before any work (a missing spec, inputs that collide): one line on stderr, nothing on stdout
    missing = pixelflow("run", str(tmp_path / "none.json"), "examples/sample.jpg", "-o", str(tmp_path), "--json")
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("pixelflow: cannot read ")


def test_invalid_spec_exits_2_with_paths(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": -5}]}))
    result = pixelflow("validate", str(spec))
    assert result.returncode == 2
    assert "$.pipeline[0].width: Expected int >= 1" in result.stderr
    assert pixelflow("run", str(spec), "examples/sample.jpg", "-o", str(tmp_path)).returncode == 2


def test_validate_prints_the_normalised_spec() -> None:
    result = pixelflow("validate", "examples/job.json")
    assert result.returncode == 0
    normal = json.loads(result.stdout)
    assert normal["pipeline"][2]["steps"] == [
        {
            "op": "resize",
            "width": 150,
            "height": None,
            "fit": "cover",
            "gravity": "centre",
            "without_enlargement": False,
            "background": None,
        }
    ]


def test_validate_json_is_one_document_either_way(tmp_path: Path) -> None:
    good = pixelflow("validate", "examples/job.json", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {
        "valid": True,
        "spec": json.loads(pixelflow("validate", "examples/job.json").stdout),
    }

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": -5},
                                                           {"id": "b", "action": "blur", "sigma": "x"}]}))  # fmt: skip
    bad = pixelflow("validate", str(spec), "--json")
    assert (bad.returncode, bad.stderr) == (2, "")
    assert json.loads(bad.stdout) == {
        "valid": False,
        "errors": [
            {"path": "$.pipeline[0].width", "message": "Expected int >= 1"},
            {"path": "$.pipeline[1].sigma", "message": "Expected float, got str"},
        ],
    }
    unreadable = pixelflow("validate", str(tmp_path / "none.json"), "--json")
    assert (unreadable.returncode, unreadable.stdout) == (2, "")
    assert unreadable.stderr == f"pixelflow: cannot read {tmp_path / 'none.json'}: No such file or directory\n"


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_schema_command_prints_the_committed_schema(flags: list[str]) -> None:
    result = pixelflow("schema", *flags)
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads((ROOT / "schemas" / "job-spec.v1.json").read_text())


def test_schema_write_json_lists_the_files(tmp_path: Path) -> None:
    result = pixelflow("schema", "--write", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"written": [str(tmp_path / "job-spec.v1.json")]}
    assert (tmp_path / "job-spec.v1.json").read_text() == (ROOT / "schemas" / "job-spec.v1.json").read_text()


def test_output_prints_one_document_or_the_text(capsys: pytest.CaptureFixture[str]) -> None:
    import datetime
    import uuid
    from dataclasses import dataclass

    from cli.output import emit, emit_batch

    @dataclass
    class Record:
        input: str
        error: dict[str, str] | None

    key = uuid.UUID(int=1)
    emit(True, {"id": key, "at": datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC)}, "never printed")
    out, err = capsys.readouterr()
    assert (json.loads(out), err) == ({"id": str(key), "at": "2025-01-02T00:00:00Z"}, "")
    emit(False, {"never": "printed"}, ["line one", "line two"])
    emit(False, {"never": "printed"}, "one line")
    emit(False, {"never": "printed"})
    assert capsys.readouterr() == ("line one\nline two\none line\n", "")

    assert emit_batch(True, [Record("a", None), Record("b", {"code": "x", "message": "y"})]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "total": 2,
        "succeeded": 1,
        "failed": 1,
        "results": [{"input": "a", "error": None}, {"input": "b", "error": {"code": "x", "message": "y"}}],
    }
    assert emit_batch(False, [Record("a", None), Record("b", None)]) == 0
    assert capsys.readouterr() == ("", "2/2 images processed, 0 failed\n")


@pytest.mark.parametrize("key", ["../job.json", "/etc/passwd"])
def test_watermark_assets_cannot_escape_the_assets_directory(tmp_path: Path, key: str) -> None:
    spec = tmp_path / "spec.json"
    image = tmp_path / "in.png"
    image.write_bytes(encode(photo(50, 50), ".png"))
    # the spec's own validation refuses '..'; an absolute-looking key fails the key pattern
    spec.write_text(json.dumps({"version": 1, "pipeline": [{"id": "w", "action": "watermark", "image": key}]}))
    result = pixelflow("run", str(spec), str(image), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "$.pipeline[0]" in result.stderr


def test_run_enforces_the_deadline_inside_a_single_call_encoder(tmp_path: Path) -> None:
    """AVIF at effort 9 on 1.9 MP runs over a minute in one libaom call; the deadline holds anyway."""
    import os
    import time

    source = tmp_path / "big.jpg"
    source.write_bytes(encode(photo(1600, 1200, seed=3), ".jpg"))
    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps({"version": 1, "pipeline": [{"id": "a", "steps": [], "format": "avif", "effort": 9}]}))
    env = {**os.environ, "PIXELFLOW_DEADLINE_SECONDS": "1.5"}
    started = time.monotonic()
    result = pixelflow("run", str(spec), str(source), "-o", str(tmp_path / "out"), env=env)
    took = time.monotonic() - started
    assert result.returncode == 1
    assert "FAILED deadline_exceeded: processing took longer than 1.5 s" in result.stderr
    # the deadline, plus starting Python and one engine process on a loaded machine; the encode
    # it stops runs for over a minute
    assert took < 1.5 + SLACK


def test_run_refuses_invalid_settings(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PIXELFLOW_DEADLINE_SECONDS": "soon"}
    result = pixelflow("run", "examples/job.json", "examples/sample.jpg", "-o", str(tmp_path), env=env)
    assert result.returncode == 2 and "PIXELFLOW_DEADLINE_SECONDS" in result.stderr


def test_run_takes_directories_and_keeps_relative_paths(tmp_path: Path) -> None:
    tree = tmp_path / "shots"
    (tree / "2024" / "may").mkdir(parents=True)
    (tree / "2025").mkdir()
    (tree / "2024" / "may" / "beach.jpg").write_bytes(encode(photo(160, 120, seed=1), ".jpg"))
    (tree / "2025" / "beach.png").write_bytes(encode(photo(120, 160, seed=2), ".png"))
    (tree / "notes.txt").write_text("not an image")
    (tree / ".hidden").mkdir()
    (tree / ".hidden" / "x.jpg").write_bytes(b"junk")
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"version": 1, "pipeline": [{"id": "t", "action": "resize", "width": 40, "format": "webp"}]})
    )
    out = tmp_path / "out"
    result = pixelflow("run", str(spec), str(tree), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.webp")) == [
        "2024/may/beach/t.webp",
        "2025/beach/t.webp",
    ]


def test_run_refuses_inputs_whose_outputs_collide(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "photo.jpg").write_bytes(encode(photo(64, 48, seed=1), ".jpg"))
    (b / "photo.jpg").write_bytes(encode(photo(64, 48, seed=2), ".jpg"))
    result = pixelflow(
        "run", "examples/job.json", str(a / "photo.jpg"), str(b / "photo.jpg"), "-o", str(tmp_path / "o")
    )
    assert result.returncode == 2
    assert "would both write photo/" in result.stderr
    assert not (tmp_path / "o").exists()  # nothing written, nothing silently overwritten


def test_version() -> None:
    from importlib.metadata import version

    result = pixelflow("--version")
    assert (result.returncode, result.stdout) == (0, f"pixelflow {version('pixelflow')}\n")


def test_remote_commands_load_neither_libvips_nor_litestar() -> None:
    """`submit` and `jobs` talk HTTP only: they start fast and run where libvips is absent."""
    probe = (
        "import sys\n"
        "from cli.main import main\n"
        "code = main(['jobs', 'list', '--api', 'http://127.0.0.1:9', '--timeout', '1'])\n"
        "loaded = sorted(m for m in ('pyvips', 'litestar', 'psycopg', 'arq', 'uvicorn') if m in sys.modules)\n"
        "print(code, loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60,
        env=env | {"PIXELFLOW_API_KEY": "pf_x"},
    )  # fmt: skip
    assert out.stdout == "1 []\n"
    assert out.stderr == "pixelflow: cannot reach http://127.0.0.1:9: Connection refused\n"


def test_remote_commands_without_the_sdk_say_how_to_install_it() -> None:
    probe = (
        "import sys\nsys.modules['pixelflow_client'] = None\nfrom cli.main import main\nsys.exit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}
    out = subprocess.run(
        [sys.executable, "-c", probe, "jobs", "list"], capture_output=True, text=True, check=False, cwd=ROOT,
        timeout=60, env=env | {"PIXELFLOW_API_URL": "http://127.0.0.1:9", "PIXELFLOW_API_KEY": "pf_x"},
    )  # fmt: skip
    assert (out.returncode, out.stderr) == (
        1,
        "pixelflow: the remote commands need the pixelflow-client package: "
        "pip install ./clients/python (from a PixelFlow checkout)\n",
    )


def test_progress_prints_plain_lines_when_not_a_terminal() -> None:
    import io

    from cli.progress import Progress

    stream = io.StringIO()
    progress = Progress(2, stream=stream)
    progress.uploading_one()
    progress.processing_one()
    progress.finished_one(failed=True, was="processing")
    progress.print("[1/2] a.jpg: FAILED corrupt_image: truncated (job x, failed)")
    progress.close()
    assert stream.getvalue() == "[1/2] a.jpg: FAILED corrupt_image: truncated (job x, failed)\n"
    assert (progress.done, progress.failed, progress.processing) == (1, 1, 0)
