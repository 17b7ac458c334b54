"""The SDK is its own small distribution: importing it loads no server code and no libvips."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
