"""Browsers upload straight to presigned URLs, so the bucket must answer their CORS preflight for
the origins ``PIXELFLOW_S3_CORS_ORIGINS`` names, and only those (real LocalStack S3)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from devstack.browser import chromium, dump_dom
from infra.storage import open_store
from infra.storage.s3 import S3Store
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

APP = "http://app.example.test:3000"


def _preflight(url: str, origin: str, method: str) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type",
        },
    )


async def test_the_bucket_allows_browser_uploads_from_configured_origins_only(stack: Stack) -> None:
    store = open_store(stack.settings(s3_bucket="pixelflow-cors", s3_cors_origins=f"{APP}, http://127.0.0.1:8000"))
    assert isinstance(store, S3Store)
    await store.ensure_bucket()
    key = "uploads/browser-test.jpg"
    put_url = store.presign_put(key, expires=timedelta(minutes=5), max_bytes=1024)
    post = store.presign_post(key, expires=timedelta(minutes=5), max_bytes=1024)
    assert post is not None

    for url, method in ((put_url.url, "PUT"), (post.url, "POST")):
        allowed = _preflight(url, APP, method)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers.get("access-control-allow-origin") == APP
        assert method in allowed.headers.get("access-control-allow-methods", "")
        refused = _preflight(url, "http://evil.example.test", method)
        assert refused.headers.get("access-control-allow-origin") not in ("http://evil.example.test", "*")

    # the actual cross-origin upload carries the allow header too, and lands
    put = httpx.put(put_url.url, content=b"\xff\xd8\xff", headers={"Origin": APP, "Content-Type": "image/jpeg"})
    assert put.status_code == 200 and put.headers.get("access-control-allow-origin") == APP
    assert "etag" in put.headers.get("access-control-expose-headers", "").lower()
    assert await store.stat(key) is not None
    await store.delete(key)
    await store.close()


async def test_without_origins_the_bucket_cors_is_left_alone(stack: Stack) -> None:
    store = open_store(stack.settings(s3_bucket="pixelflow-nocors"))
    await store.ensure_bucket()
    url = store.presign_put("uploads/x.jpg", expires=timedelta(minutes=5), max_bytes=1024).url
    assert _preflight(url, APP, "PUT").headers.get("access-control-allow-origin") not in (APP, "*")
    await store.close()


_PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const put = %(put)s, post = %(post)s;
const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0]);
async function run() {
  const results = [];
  try {
    const r = await fetch(put, {method: "PUT", body: new Blob([jpeg]), headers: {"Content-Type": "image/jpeg"}});
    results.push("put " + r.status + " etag=" + (r.headers.get("ETag") !== null));
  } catch (e) { results.push("put blocked"); }
  try {
    const form = new FormData();
    for (const [k, v] of Object.entries(post.fields)) form.append(k, v);
    form.append("Content-Type", "image/jpeg");
    form.append("file", new Blob([jpeg], {type: "image/jpeg"}), "a.jpg");
    const r = await fetch(post.url, {method: "POST", body: form});
    results.push("post " + r.status);
  } catch (e) { results.push("post blocked"); }
  document.getElementById("out").textContent = results.join("; ");
}
run();
</script></body></html>"""


class _Page:
    """One page on 127.0.0.1, replaced between loads (the port is the origin, so it stays)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = page.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.html = ""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (build/services.sh installs it)")
async def test_chromium_uploads_from_an_allowed_page_and_is_refused_elsewhere(stack: Stack) -> None:
    import json
    import re

    page = _Page()
    store = open_store(stack.settings(s3_bucket="pixelflow-browser", s3_cors_origins=f"http://127.0.0.1:{page.port}"))
    await store.ensure_bucket()
    try:
        # the same server as http://localhost:PORT is another origin, not in the bucket's rule
        for host, name, expected in (
            ("127.0.0.1", "allowed", "put 200 etag=true; post 204"),
            ("localhost", "other", "put blocked; post blocked"),
        ):
            put = store.presign_put(f"uploads/{name}.jpg", expires=timedelta(minutes=5), max_bytes=1024)
            post = store.presign_post(f"uploads/{name}-form.jpg", expires=timedelta(minutes=5), max_bytes=1024)
            assert post is not None
            page.html = _PAGE % {
                "put": json.dumps(put.url),
                "post": json.dumps({"url": post.url, "fields": post.fields}),
            }
            dom = dump_dom(f"http://{host}:{page.port}/")
            found = re.search(r'<pre id="out">(.*?)</pre>', dom)
            assert found is not None, dom
            assert found.group(1) == expected, (host, found.group(1))
        assert await store.stat("uploads/allowed.jpg") is not None
        assert await store.stat("uploads/allowed-form.jpg") is not None
        # the refused PUT never left the browser: its preflight failed. (A form POST is a "simple"
        # request that needs no preflight, so it may land even though the page cannot read the answer;
        # the presigned policy, not CORS, is what limits it.)
        assert await store.stat("uploads/other.jpg") is None
    finally:
        page.close()
        await store.close()
