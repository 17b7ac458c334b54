"""Signed image URLs without services: the SDK's URLs verify against the server's verifier and
read back as the options they were built from; negotiation and width snapping."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from pixelflow_client import image_url, srcset

from control_plane.delivery.grammar import parse_options, parse_source, split_path
from control_plane.delivery.negotiate import choose_format, hinted_width, snap, source_features
from control_plane.problems import Forbidden, Unprocessable
from devstack.imagegen import encode, photo
from infra.signing import new_signing_key, sign_path, signature_matches
from infra.url_policy import parse_widths

KID, SECRET = new_signing_key()
JOB = str(uuid.uuid4())


def _verified(url: str) -> tuple[list[str], str]:
    signed = split_path(urlsplit(url).path)
    assert signed.kid == KID
    assert signature_matches(SECRET, signed.signed, signed.signature)
    return signed.options, signed.source


def test_sdk_urls_verify_and_read_back() -> None:
    url = image_url(
        "https://img.example.com/", KID, SECRET, job=JOB, width=640, fit="inside", format="auto", quality=80,
        steps=[("blur", {"sigma": 2}), ("resize", {"background": "#ffffff", "fit": "contain", "width": 10})],
    )  # fmt: skip
    assert url.startswith("https://img.example.com/img/")
    options, source = _verified(url)
    assert parse_source(source).id == JOB
    p = parse_options(options)
    assert p.width == (640, 0) and p.fit == ("inside", 1) and p.format == ("auto", 4) and p.quality == (80, 5)
    assert [s["op"] for s, _ in p.steps] == ["blur", "resize"]
    assert p.steps[0][0]["sigma"] == 2.0  # converted by the step's own type
    assert p.steps[1][0]["background"] == "#ffffff"


def test_template_and_asset_urls_verify() -> None:
    url = image_url(
        "http://x", KID, SECRET, asset="logos/brand mark.png", template="hero@3", variant="thumb",
        params={"caption": "Sale 50%", "dark": True},
    )  # fmt: skip
    options, source = _verified(url)
    ref = parse_source(source)
    assert (ref.kind, ref.id) == ("asset", "logos/brand mark.png")
    p = parse_options(options)
    assert p.template == ("hero@3", "thumb", 0)
    assert p.parameters == {"caption": ("Sale 50%", 1), "dark": ("true", 2)}


def test_any_change_to_the_path_breaks_the_signature() -> None:
    url = image_url("http://x", KID, SECRET, job=JOB, width=640)
    signed = split_path(urlsplit(url).path)
    assert not signature_matches(SECRET, signed.signed.replace("w:640", "w:641"), signed.signature)
    assert not signature_matches("another secret", signed.signed, signed.signature)
    flipped = ("B" if signed.signature[0] == "A" else "A") + signed.signature[1:]
    assert not signature_matches(SECRET, signed.signed, flipped)
    assert sign_path(SECRET, signed.signed) == signed.signature
    with pytest.raises(Forbidden):
        split_path("/img/onlysig")


def test_srcset_signs_each_width() -> None:
    text = srcset("http://x", KID, SECRET, [320, 640], job=JOB, format="auto")
    entries = [e.rsplit(" ", 1) for e in text.split(", ")]
    assert [w for _, w in entries] == ["320w", "640w"]
    for url, w in entries:
        options, _ = _verified(url)
        assert parse_options(options).width == (int(w[:-1]), 0)


def test_bad_options_name_their_place() -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_options(["w:640", "zoom:2"])
    assert caught.value.errors is not None and caught.value.errors[0].path == "$.url.options[1]"
    with pytest.raises(Unprocessable) as caught:
        parse_options(["s:blur:sigma=lots"])
    assert caught.value.errors is not None and caught.value.errors[0].path.startswith("$.url.options[0]")


@pytest.mark.parametrize(
    ("accept", "alpha", "animated", "expected"),
    [
        ("image/avif,image/webp,*/*", False, False, "avif"),
        ("image/webp,*/*", False, False, "webp"),
        ("*/*", False, False, "jpeg"),
        ("*/*", True, False, "png"),
        ("image/avif;q=0,image/webp", False, False, "webp"),
        ("image/avif,image/webp", False, True, "webp"),
        ("*/*", False, True, "gif"),
    ],
)
def test_negotiation(accept: str, alpha: bool, animated: bool, expected: str) -> None:
    assert choose_format(accept, alpha=alpha, animated=animated) == expected


def test_source_features_from_headers() -> None:
    assert source_features("png", encode(photo(64, 48, alpha=True), ".png")) == (True, False)
    assert source_features("png", encode(photo(64, 48), ".png")) == (False, False)
    assert source_features("webp", encode(photo(64, 48, alpha=True), ".webp", lossless=True))[0]
    assert source_features("jpeg", encode(photo(64, 48), ".jpg")) == (False, False)


def test_widths_and_hints() -> None:
    widths = parse_widths(" 1024,320,640,320 ")
    assert widths == (320, 640, 1024)
    assert [snap(w, widths) for w in (1, 320, 321, 2000)] == [320, 320, 640, 1024]
    assert snap(777, ()) == 777
    with pytest.raises(ValueError, match="not a width"):
        parse_widths("320,big")
    assert hinted_width({"Sec-CH-Width": "500.2"}) == (501, "Sec-CH-Width")
    assert hinted_width({"Width": "300"}) == (300, "Width")
    assert hinted_width({}) == (None, None)


async def test_in_flight_renders_run_once_per_key() -> None:
    import asyncio

    from control_plane.delivery.inflight import InFlight

    inflight, calls = InFlight(), []

    async def make() -> bytes:
        calls.append(1)
        await asyncio.sleep(0.05)
        return b"image"

    results = await asyncio.gather(*(inflight.once("k", make) for _ in range(5)))
    assert len(calls) == 1 and sorted(joined for _, joined in results) == [False, True, True, True, True]
    assert {data for data, _ in results} == {b"image"}

    async def fail() -> bytes:
        await asyncio.sleep(0.01)
        raise Unprocessable("bad", code="invalid_operation")

    outcomes = await asyncio.gather(*(inflight.once("f", fail) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, Unprocessable) for o in outcomes)
    assert (await inflight.once("k", make))[1] is False  # finished renders are not kept
