"""The pieces of URL and job sources that need no services: the DSL's shape, what messages show
of a URL, where `submit --url` writes, and the local store's copy (job sources)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.inputs import expand
from data_plane.sources import origin
from infra.storage import ObjectNotFound
from infra.storage.local import LocalStore, UrlSigner
from pipeline.dsl import decode_job_spec
from pipeline.errors import SpecError

BASE = {"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 10}]}


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ({}, "$.source"),
        ({"url": "https://a.test/x.jpg", "job": "6f0c1a2b-0000-4000-8000-000000000000"}, "$.source"),
        ({"url": "ftp://a.test/x.jpg"}, "$.source.url"),
        ({"url": "https://a.test/" + "x" * 2048}, "$.source.url"),
        ({"job": "not-a-uuid"}, "$.source.job"),
        ({"path": "/etc/passwd"}, "$.source"),
    ],
)
def test_a_source_is_exactly_one_of_url_or_job(source: dict, path: str) -> None:
    with pytest.raises(SpecError) as caught:
        decode_job_spec({**BASE, "source": source})
    assert [e.path for e in caught.value.errors] == [path]


def test_a_source_round_trips_without_the_other_field() -> None:
    from pipeline.dsl import encode_job_spec

    spec = decode_job_spec({**BASE, "source": {"url": "https://a.test/x.jpg"}})
    assert b'"source":{"url":"https://a.test/x.jpg"}' in encode_job_spec(spec)
    assert decode_job_spec(BASE).source is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@img.example.com/a/b.jpg?X-Amz-Signature=abc", "https://img.example.com"),
        ("http://img.example.com:8080/token/abc", "http://img.example.com:8080"),
        ("http://[::1]:9/x", "http://[::1]:9"),
        ("http://[::1/x", "(an invalid URL)"),
    ],
)
def test_messages_show_a_url_as_its_origin(url: str, shown: str) -> None:
    assert origin(url) == shown


def test_submit_urls_write_to_their_file_stem(tmp_path: Path) -> None:
    pairs, collisions = expand([], ["https://a.test/photos/beach.jpg", "https://b.test/", "https://c.test/x/beach.png"])
    assert [folder for _, folder in pairs] == [Path("beach"), Path("b.test"), Path("beach")]
    assert collisions == ["https://a.test/photos/beach.jpg and https://c.test/x/beach.png would both write beach/"]


async def test_the_local_store_copies_an_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, UrlSigner("secret", "http://127.0.0.1:8000"))
    await store.write("sources/c/1", b"original", "image/png")
    await store.copy("sources/c/1", "sources/c/2")
    await store.delete("sources/c/1")
    assert await store.read("sources/c/2", max_bytes=100) == b"original"
    with pytest.raises(ObjectNotFound):
        await store.copy("sources/c/1", "sources/c/3")
