"""Real Chromium (Debian's ``chromium``), headless, for tests of what browsers do: load a page,
let its scripts run, return the DOM they leave."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

__all__ = ["chromium", "dump_dom"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, *, budget_ms: int = 10_000, timeout: float = 60.0, only_host: str | None = None) -> str:
    """The page's DOM once it has loaded and its scripts have had ``budget_ms`` of virtual time
    (network waits do not consume it, so a fetch the page starts is awaited). ``only_host``: every
    other name fails to resolve, as if the machine had no network (a CDN is unreachable)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (build/services.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="pixelflow-chromium-") as profile:
        out = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",  # root in CI; the page is our own
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                *([f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {only_host}"] if only_host else []),
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(f"chromium exited {out.returncode}: {out.stderr[-2000:]}")
    return out.stdout
