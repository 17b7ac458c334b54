"""The API reference at /schema works offline: it loads only what the API itself serves, and in
a real browser cut off from everything but this machine it renders the operations (a page whose
script comes from a CDN is blank there, which is how a user finds out)."""

from __future__ import annotations

import re

import httpx
import pytest

from devstack.browser import chromium, dump_dom
from tests.integration.conftest import ApiServer

pytestmark = pytest.mark.integration

ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}


def test_the_docs_page_references_only_assets_the_api_serves(api: ApiServer) -> None:
    page = httpx.get(f"{api.url}/schema", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    references = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert references
    assert [r for r in references if not r.startswith(("/", "data:"))] == []
    scripts = [r for r in references if r.endswith(".js")]
    assert scripts
    for ref in (r for r in references if r.startswith("/")):
        asset = httpx.get(api.url + ref, timeout=10)
        assert asset.status_code == 200, ref
        expected = next(t for ext, t in ASSET_TYPES.items() if ref.endswith(ext))
        assert asset.headers["content-type"].startswith(expected), (ref, asset.headers["content-type"])
        assert len(asset.content) > 100_000  # the bundle itself, not an error page
        # nothing the bundle loads by itself comes from elsewhere (its sidebar logo came from a CDN)
        assert re.findall(rb"""src:\s*["']https?://""", asset.content) == [], ref


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (build/services.sh installs it)")
def test_the_docs_page_renders_in_chromium_with_no_network_but_this_machine(api: ApiServer) -> None:
    dom = dump_dom(f"{api.url}/schema", budget_ms=15_000, timeout=90, only_host="127.0.0.1")
    for summary in (
        "Create a job and get its upload URL",
        "Check the upload and queue the job",
        "Download a variant",
        "Validate a spec; preview sizes, cost, limits",
        "job.succeeded",
    ):
        assert summary in dom, summary
