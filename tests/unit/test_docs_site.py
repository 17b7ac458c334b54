"""The front door and the site behind it: README.md stays small and its links resolve, the docs'
generated tables match what they are generated from, and `mkdocs build --strict` passes, so a
broken link or anchor, or a page missing from the nav, fails CI. Never skipped: without mkdocs
(the `dev` extra) the build test fails."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 10 * 1024


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` at the repository's root, with this tree first on the path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_the_readme_is_a_front_door() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size:,} bytes; move detail to a page under docs/"


def test_the_readme_starts_with_the_two_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first is not None
    commands = [line for line in first.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == [
        "bash build/setup.sh && .venv/bin/pixelflow run examples/job.json examples/sample.jpg -o out",
        "bash build/test.sh",
    ]


def test_the_readme_links_resolve() -> None:
    """mkdocs checks the site's links; README.md is outside it, so its relative links are checked here."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link]
    assert local
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_the_generated_tables_are_current() -> None:
    out = _run(str(ROOT / "docs" / "gen.py"), "--check")
    assert out.returncode == 0, out.stderr


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    assert importlib.util.find_spec("mkdocs") is not None, "mkdocs is missing: pip install -e '.[dev]'"
    assert importlib.util.find_spec("material") is not None, "mkdocs-material is missing: pip install -e '.[dev]'"
    out = _run("-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    walkthrough = (tmp_path / "site" / "getting-started" / "index.html").read_text()
    assert "devstack.receiver" in walkthrough, "the README's walk-through is no longer included"
