"""URL sources cannot reach internal addresses (as written, through a redirect, or rebound by DNS
between the check and the connection), and an origin cannot make the worker read an oversize
body or wait past its deadline.

The fetcher runs here in-process against real HTTP servers on loopback. To have an origin the
guard calls public, these tests treat exactly 127.0.0.2 as a public address (every other
loopback, private and link-local address keeps its real verdict): names resolve through an
injected resolver, as the webhook rebinding tests do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

import infra.netguard
from data_plane.sources import SourceError, fetch_source, source_client
from devstack.imagegen import encode, photo
from devstack.origin import Origin
from infra.lifecycle import Reason
from infra.settings import load_settings
from tests.integration.conftest import ApiServer, Stack, make_tenant
from tests.security.conftest import record
from tests.timing import SLACK

PRETEND_PUBLIC = "127.0.0.2"
MAX_BYTES = 1024 * 1024
PNG = encode(photo(64, 48, seed=3), ".png")


@pytest.fixture
def public_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    real = infra.netguard.non_public_reason
    monkeypatch.setattr(infra.netguard, "non_public_reason", lambda ip: None if str(ip) == PRETEND_PUBLIC else real(ip))


@pytest.fixture
def public_origin(public_loopback: None) -> Iterator[Origin]:
    with Origin(PRETEND_PUBLIC) as o:
        yield o


@pytest.fixture
def internal() -> Iterator[Origin]:
    """What an attacker wants the worker to reach: a service on 127.0.0.1."""
    with Origin("127.0.0.1") as o:
        o.serve("/secret", b"internal data")
        yield o


class Resolver:
    """Names to addresses; ``rebind.test`` answers the public address once, then loopback."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host == "rebind.test":
            return [PRETEND_PUBLIC] if self.asked.count(host) == 1 else ["127.0.0.1"]
        if host == "internal.test":
            return ["127.0.0.1"]
        return [PRETEND_PUBLIC]


@pytest.fixture
async def fetch() -> AsyncIterator:
    resolver = Resolver()
    settings = load_settings({}, url_sources_allow_private=False)
    async with source_client(settings, resolver) as http:
        # a hang guard: the tests of the fetch's deadline pass their own
        async def run(url: str, *, timeout: float = 3 * SLACK, max_redirects: int = 3) -> bytes:
            return await fetch_source(
                http,
                url,
                max_bytes=MAX_BYTES,
                timeout=timeout,
                max_redirects=max_redirects,
                allow_private=False,
                resolver=resolver,
            )

        yield run


async def refused(fetching, code: Reason) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await fetching
    assert caught.value.code == code, caught.value.public
    return caught.value


async def test_a_public_origin_is_fetched(fetch, public_origin: Origin) -> None:
    public_origin.serve("/a.png", PNG, content_type="image/png")
    assert await fetch(public_origin.url("/a.png", "images.test")) == PNG


async def test_dns_rebinding_is_refused_at_connect(fetch, public_origin: Origin, internal: Origin) -> None:
    """The check sees the public answer; the connection asks again, gets loopback, and is refused."""
    error = await refused(fetch(f"http://rebind.test:{internal.port}/secret"), Reason.SOURCE_BLOCKED)
    assert "non-public" in error.public
    assert internal.hits == {}


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://internal.test:{port}/secret",  # a name that resolves to loopback
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused(
    fetch, public_origin: Origin, internal: Origin, target: str
) -> None:
    url = public_origin.redirect("/moved", target.format(port=internal.port))
    await refused(fetch(url.replace(PRETEND_PUBLIC, "images.test")), Reason.SOURCE_BLOCKED)
    assert public_origin.hits == {"/moved": 1}
    assert internal.hits == {}


async def test_redirects_are_followed_up_to_the_limit(fetch, public_origin: Origin) -> None:
    public_origin.serve("/final.png", PNG)
    public_origin.redirect("/hop2", "/final.png", status=301)
    public_origin.redirect("/hop1", public_origin.url("/hop2", "images.test"), status=307)
    assert await fetch(public_origin.url("/hop1", "images.test"), max_redirects=2) == PNG

    public_origin.redirect("/loop", "/loop")
    error = await refused(fetch(public_origin.url("/loop", "images.test"), max_redirects=3), Reason.SOURCE_UNREACHABLE)
    assert "more than 3 redirects" in error.public
    assert public_origin.hits["/loop"] == 4  # the first request and three redirects, then it stopped


async def test_a_declared_oversize_body_is_refused_before_reading(fetch, public_origin: Origin) -> None:
    # Content-Length says 1 TB and the server keeps writing: nothing past the headers is read.
    # (a fetch that waited on the body would end at its timeout, as source_timeout)
    public_origin.stream("/huge", b"\xff" * 65536, content_length=str(10**12))
    await refused(fetch(public_origin.url("/huge", "images.test")), Reason.SOURCE_TOO_LARGE)


async def test_a_chunked_body_is_cut_at_the_limit(fetch, public_origin: Origin) -> None:
    """No length announced, and the body never ends: the read stops once past MAX_BYTES."""
    public_origin.stream("/endless", b"\x89PNG" * 16384)  # 64 KiB chunks, forever
    # (a read that did not stop would end at the fetch's timeout, as source_timeout)
    await refused(fetch(public_origin.url("/endless", "images.test")), Reason.SOURCE_TOO_LARGE)
    await asyncio.sleep(0.5)  # the server notices the hang-up on its next write
    sent = public_origin.sent["/endless"]
    # Past the limit, plus what the two kernels' socket buffers held when the worker hung up.
    assert MAX_BYTES < sent < MAX_BYTES + 16 * 1024 * 1024


async def test_a_lying_content_length_reads_no_more_than_it_says(fetch, public_origin: Origin) -> None:
    """A small Content-Length and a body that goes on: only the declared bytes are read (the
    HTTP parser holds the length), so a lie cannot push more than the limit into the worker."""
    public_origin.stream("/liar", b"\x89PNG" * 16384, repeat=64, content_length="1000")
    assert len(await fetch(public_origin.url("/liar", "images.test"))) == 1000


async def test_a_trickling_body_ends_at_the_deadline(fetch, public_origin: Origin) -> None:
    """A byte every 100 ms keeps every read under any per-read timeout; the deadline covers the
    whole fetch."""
    public_origin.stream("/slow", b"\x89", interval=0.1)  # forever
    deadline = 1.0
    started = time.monotonic()
    fetching = fetch(public_origin.url("/slow", "images.test"), timeout=deadline)
    await refused(asyncio.wait_for(fetching, deadline + SLACK), Reason.SOURCE_TIMEOUT)
    assert deadline - 0.1 < time.monotonic() - started < deadline + SLACK


@pytest.mark.parametrize(("status", "transient"), [(404, False), (500, False), (403, False), (503, True), (429, True)])
async def test_an_error_status_fails_and_only_overload_is_retried(
    fetch, public_origin: Origin, status: int, transient: bool
) -> None:
    public_origin.serve("/err", b"no", status=status)
    error = await refused(fetch(public_origin.url("/err", "images.test")), Reason.SOURCE_UNREACHABLE)
    assert f"answered {status}" in error.public and error.transient is transient


async def test_a_closed_port_is_unreachable_and_retried(fetch, public_loopback: None) -> None:
    with Origin(PRETEND_PUBLIC) as o:
        port = o.port
    error = await refused(fetch(f"http://images.test:{port}/x"), Reason.SOURCE_UNREACHABLE)
    assert error.transient


async def test_messages_show_only_the_origin(fetch, public_origin: Origin) -> None:
    url = public_origin.url("/private/token-abc?sig=s3cr3t", "images.test").replace("http://", "http://user:pw@")
    error = await refused(fetch(url), Reason.SOURCE_UNREACHABLE)
    assert error.public == f"http://images.test:{public_origin.port} answered 404"


# Creation: a literal internal host in any spelling is refused with the field's path.
REFUSED_AT_CREATION = [
    "http://127.0.0.1/a.png",
    "http://localhost:8080/a.png",
    "http://10.1.2.3/a.png",
    "http://192.168.0.10/a.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://0x7f.1/a.png",
    "http://2130706433/a.png",
    "http://[::ffff:127.0.0.1]/a.png",
    "http://[::1]/a.png",
    "http://[fd00::1]/a.png",
]


async def test_internal_urls_are_refused_at_creation(stack: Stack) -> None:
    from devstack.backing_services import free_port

    server = ApiServer(stack.settings(url_sources_allow_private=False), free_port()).start()
    try:
        t = await make_tenant(stack, server)
        base = {"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 10}]}
        for url in REFUSED_AT_CREATION:
            r = await t.http.post("/v1/jobs", json={**base, "source": {"url": url}})
            assert record(f"url source {url}", r.status_code) == 422, (url, r.text)
            body = r.json()
            assert body["code"] == "invalid_spec"
            assert [e["path"] for e in body["errors"]] == ["$.source.url"], url
        for bad, path in [("ftp://example.com/a.png", "$.source.url"), ("https://", "$.source.url")]:
            r = await t.http.post("/v1/jobs", json={**base, "source": {"url": bad}})
            assert record(f"url source {bad}", r.status_code) == 422
            assert r.json()["errors"][0]["path"] == path
        r = await t.http.post("/v1/jobs", json={**base, "source": {"url": "https://example.com/a.png"}})
        assert r.status_code == 201 and r.json()["status"] == "queued", r.text  # public: fetched by a worker
        assert r.json()["upload"] is None
        assert (await t.http.get("/v1/jobs")).json()["jobs"][0]["id"] == r.json()["id"]
        await t.http.aclose()
    finally:
        server.stop()


def test_the_fetch_client_uses_no_proxy_and_follows_nothing() -> None:
    client = source_client(load_settings({}))
    assert client.follow_redirects is False
    assert client.headers["accept-encoding"] == "identity"
    assert isinstance(client._transport, httpx.AsyncHTTPTransport)  # the guarded one, no env proxy mounts
    assert client._mounts == {}


async def test_the_fetch_never_outlives_the_jobs_deadline(public_origin: Origin) -> None:
    """The worker gives the fetch what is left of the job's deadline when that is shorter than
    PIXELFLOW_SOURCE_FETCH_TIMEOUT_SECONDS."""
    from types import SimpleNamespace

    from data_plane.processing import _original
    from pipeline.dsl import decode_job_spec

    class NoOriginalYet:
        async def stat(self, key: str) -> None:
            return None

    settings = load_settings({}, url_sources_allow_private=True, source_fetch_timeout_seconds=30)
    url = public_origin.stream("/trickle", b"\x89", interval=0.1)
    spec = decode_job_spec({"version": 1, "source": {"url": url}, "pipeline": [{"id": "a", "action": "grayscale"}]})
    async with source_client(settings) as http:
        deps = SimpleNamespace(settings=settings, store=NoOriginalYet(), sources=http)
        job = SimpleNamespace(source_key="sources/c/j")
        time_left = 0.8
        started = time.monotonic()
        await refused(_original(deps, job, spec, time_left=time_left), Reason.SOURCE_TIMEOUT)  # type: ignore[arg-type]
    # the job's time left, not the 30 s fetch timeout; a loaded machine only makes it later
    assert time_left - 0.1 < time.monotonic() - started < time_left + SLACK
