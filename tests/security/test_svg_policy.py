"""Item 8: hostile SVGs are refused from their bytes and tree, before librsvg renders anything."""

from __future__ import annotations

import base64
import time

import pytest

from devstack.imagegen import encode, photo
from pipeline.dsl import Limits, decode_job_spec
from pipeline.errors import ImageTooLarge, PipelineError, UnsupportedFormat
from tests.timing import SLACK

pytestmark = pytest.mark.integration

NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(body: str, size: int = 2000, head: str = "") -> bytes:
    return f'{head}<svg {NS} width="{size}" height="{size}">{body}</svg>'.encode()


def use_bomb(levels: int = 8, fan: int = 10) -> bytes:
    defs = '<g id="l0"><rect width="1000" height="1000" opacity=".01"/></g>'
    for i in range(1, levels):
        defs += f'<g id="l{i}">' + f'<use xlink:href="#l{i - 1}"/>' * fan + "</g>"
    return svg(f'<defs>{defs}</defs><use xlink:href="#l{levels - 1}"/>', 1000)


def shapes(n: int, pad: int = 0) -> bytes:
    one = '<rect x="1" y="1" width="9" height="9" fill="#123456"' + " " * pad + "/>"
    return svg(one * n, 1000)


FILTER_BOMB = svg(  # 304 bytes; librsvg did not finish it in minutes at full size
    '<filter id="f" x="-5" y="-5" width="11" height="11"><feGaussianBlur stdDeviation="2000"/>'
    '<feMorphology radius="900"/></filter><rect width="2000" height="2000" fill="red" filter="url(#f)"/>',
    4000,
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lollollollollol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)

HOSTILE: list[tuple[str, bytes, type[PipelineError]]] = [
    ("filter bomb, 315 bytes", FILTER_BOMB, ImageTooLarge),
    (
        "feTurbulence octaves",
        svg('<filter id="f"><feTurbulence numOctaves="100000"/></filter><rect filter="url(#f)" width="9" height="9"/>'),
        ImageTooLarge,
    ),
    (
        "feConvolveMatrix order",
        svg('<filter id="f"><feConvolveMatrix order="300" kernelMatrix="1"/></filter>'),
        ImageTooLarge,
    ),
    ("40 filter primitives", svg('<filter id="f">' + '<feOffset dx="1"/>' * 40 + "</filter>"), ImageTooLarge),
    ("billion laughs", svg("<text>&j;</text>", head=LAUGHS), UnsupportedFormat),
    (
        "external entity",
        svg("<text>&x;</text>", head='<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        UnsupportedFormat,
    ),
    ("external DTD", svg("", head='<!DOCTYPE svg SYSTEM "http://169.254.169.254/latest/x.dtd">'), UnsupportedFormat),
    ("use bomb, 2 KB", use_bomb(), ImageTooLarge),
    ("use cycle", svg('<g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g>'), UnsupportedFormat),
    ("400k shapes, 25 MB", shapes(400_000, pad=20), ImageTooLarge),
    ("400k shapes, compact", shapes(400_000), ImageTooLarge),
    ("nested 10k deep", svg("<g>" * 10_000 + "</g>" * 10_000), ImageTooLarge),
    ("script", svg("<script>alert(1)</script>"), UnsupportedFormat),
    (
        "foreignObject",
        svg('<foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="http://x/"/></foreignObject>'),
        UnsupportedFormat,
    ),
    ("image from a file", svg('<image xlink:href="file:///etc/passwd" width="9" height="9"/>'), UnsupportedFormat),
    (
        "image from metadata",
        svg('<image href="http://169.254.169.254/latest/meta-data" width="9" height="9"/>'),
        UnsupportedFormat,
    ),
    ("use from a URL", svg('<use href="https://evil.example/x.svg#a"/>'), UnsupportedFormat),
    (
        "nested svg data URI",
        svg('<image href="data:image/svg+xml;base64,' + base64.b64encode(FILTER_BOMB).decode() + '"/>'),
        UnsupportedFormat,
    ),
    ("fill from a URL", svg('<rect fill="url(http://evil.example/p.svg#p)" width="9" height="9"/>'), UnsupportedFormat),
    ("style @import", svg('<style>@import "http://evil.example/x.css";</style>'), UnsupportedFormat),
    ("style url()", svg("<style>rect { fill: url('file:///etc/passwd#x') }</style>"), UnsupportedFormat),
    (
        "xml-stylesheet",
        svg("", head='<?xml version="1.0"?><?xml-stylesheet href="http://evil.example/x.css"?>'),
        UnsupportedFormat,
    ),
    (
        "XInclude",
        svg('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'),
        UnsupportedFormat,
    ),
    ("UTF-7", svg("", head='<?xml version="1.0" encoding="UTF-7"?>'), UnsupportedFormat),
]

PNG = base64.b64encode(encode(photo(8, 8), ".png")).decode()
BENIGN = svg(
    '<defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/><stop offset="1" stop-color="#00f"/></linearGradient>'
    '<filter id="shadow" x="-20%" y="-20%" width="140%" height="140%"><feGaussianBlur stdDeviation="4"/>'
    '<feOffset dx="2" dy="2"/><feMerge><feMergeNode/><feMergeNode in="SourceGraphic"/></feMerge></filter>'
    '<g id="dot"><circle r="5" fill="url(#g)"/></g></defs>'
    "<style>circle { stroke: #000 }</style>"
    '<rect width="180" height="180" fill="url(#g)" filter="url(#shadow)"/>'
    '<use href="#dot" x="20" y="20"/><use xlink:href="#dot" x="40" y="20"/>'
    f'<image href="data:image/png;base64,{PNG}" width="8" height="8"/>',
    200,
    head='<?xml version="1.0" encoding="UTF-8"?><!-- a logo -->',
)


@pytest.mark.parametrize(("name", "data", "error"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_svgs_are_refused_before_rendering(name: str, data: bytes, error: type[PipelineError]) -> None:
    from pipeline.load import probe

    started = time.perf_counter()
    with pytest.raises(error) as caught:
        probe(data, Limits())
    assert caught.value.code in ("unsupported_format", "image_too_large")
    assert time.perf_counter() - started < SLACK  # refused from the text: rendering a bomb takes far longer


def test_an_ordinary_svg_still_renders() -> None:
    from pipeline.engine import process
    from pipeline.load import probe

    assert probe(BENIGN, Limits()).format == "svg"
    spec = decode_job_spec({"version": 1, "pipeline": [{"id": "v", "action": "resize", "width": 100}]})
    (variant,) = process(BENIGN, spec).variants
    assert (variant.format, variant.width) == ("png", 100)
