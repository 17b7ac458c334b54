"""The SDK is its own small distribution: importing it loads no server code and no libvips."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_sdk_depends_on_httpx_and_msgspec_only() -> None:
    meta = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())
    assert sorted(d.split(">")[0].split("<")[0] for d in meta["project"]["dependencies"]) == ["httpx", "msgspec"]
    probe = (
        "import sys, pixelflow_client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'pyvips', 'litestar', 'arq', 'psycopg', 'minio', 'pipeline', 'infra', 'control_plane', 'data_plane'}]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == ""


def test_the_sdk_reads_every_field_the_api_writes() -> None:
    """The SDK's models against the API's own structs: a job view with every field set decodes
    into the SDK's Job with nothing lost (the SDK cannot import the server, so compare JSON)."""
    import msgspec
    from pixelflow_client.models import Job

    from control_plane.api.views import JobView
    from infra.events import PublicVariant
    from pipeline.details import Camera, Location, SourceDetails

    view = JobView(
        id=uuid.uuid4(),
        status="succeeded",
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
        attempts=1,
        variants=[PublicVariant("a", "webp", "image/webp", 80, 60, 1234, "https://x/a", 70, 3)],
        info=SourceDetails(
            format="gif",
            width=160,
            height=120,
            orientation=1,
            frames=3,
            has_alpha=False,
            average_color="#102030",
            dominant_color="#112233",
            profile="sRGB",
            camera=Camera(make="M", model="P", lens="L", taken_at="2026-05-01T12:00:00", location=Location(1.5, 2.5)),
            blurhash="LAHnT",
            thumbhash="nwcG",
        ),
        original_expires_at=datetime(2026, 11, 25, tzinfo=UTC),
        original_deleted_at=datetime(2026, 11, 25, 1, tzinfo=UTC),
        outputs_expire_at=datetime(2026, 12, 23, tzinfo=UTC),
        outputs_deleted_at=datetime(2026, 12, 23, 1, tzinfo=UTC),
    )
    wire = msgspec.json.encode(view)
    job = msgspec.json.decode(wire, type=Job)
    assert msgspec.to_builtins(job.variants[0]) == msgspec.to_builtins(view.variants[0])
    assert msgspec.to_builtins(job.info) == msgspec.to_builtins(view.info)


def test_downloading_a_variant_retention_deleted_says_so(tmp_path: Path) -> None:
    from pixelflow_client import Client, Variant

    gone = Variant("thumb", "jpeg", "image/jpeg", 10, 10, 100, None)
    with Client("http://127.0.0.1:9", "pf_x") as pf, pytest.raises(ValueError, match="retention"):
        pf.download(gone, tmp_path / "thumb.jpg")
    assert list(tmp_path.iterdir()) == []


def test_the_sdk_ships_its_types() -> None:
    """PEP 561's marker, packaged: a user's type checker reads the SDK's annotations (mypy checks them here)."""
    meta = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())
    assert (ROOT / "clients" / "python" / "pixelflow_client" / "py.typed").is_file()
    assert meta["tool"]["setuptools"]["package-data"]["pixelflow_client"] == ["py.typed"]
