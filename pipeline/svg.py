"""The SVG policy: what an SVG source may contain before librsvg is allowed to render it.

SVG is a document format, not a pixel format: a few hundred bytes can ask the renderer for
minutes of work (a filter with a huge radius, ``<use>`` references that multiply each other) or
for things an image must never do (entities, scripts, loading other files or URLs). The sniffer
only recognises SVG; this module decides whether one is acceptable, from its bytes and XML tree
alone (no libvips), before any rendering.

Refused with ``unsupported_format``:
- any markup declaration (``<!DOCTYPE``, ``<!ENTITY``, ...): no entity can be defined, so
  entity expansion (billion laughs) and external entities are impossible. This is checked on
  the raw bytes *before* parsing, which is what makes the stdlib parser safe to use here;
- an encoding other than UTF-8/ASCII (the byte-level checks must see what the parser sees);
- processing instructions other than the XML declaration (``<?xml-stylesheet ...?>``);
- ``<script>``, ``<foreignObject>`` (HTML inside SVG), XInclude, and embedded objects;
- references that leave the document: ``href``/``xlink:href`` may only be a ``#fragment`` or a
  ``data:image/{png,jpeg,gif,webp}`` URI (a raster image carried inside the file; ``data:`` SVG
  is refused because it would dodge this policy); ``url(...)`` in attributes and ``<style>``
  may only point at ``#fragment``; ``@import`` is refused.

Refused with ``image_too_large`` (work, not content, is the problem):
- more than ``MAX_BYTES``;
- more than ``MAX_ELEMENTS`` elements *after* expanding ``<use>`` references (catches both a
  25 MB file of 400k shapes and a 2 KB file of ten ``<use>`` of ten ``<use>`` of ...), or
  nesting deeper than ``MAX_DEPTH``;
- more than ``MAX_FILTER_PRIMITIVES`` filter primitives, a primitive parameter above its cap
  (``_PRIMITIVE_CAPS``: the ones whose cost grows with the value), or a filter region far larger
  than the element it applies to.
"""

from __future__ import annotations

import io
import re

# The stdlib parser is safe here only because markup declarations (DOCTYPE, ENTITY) are refused
# on the raw bytes before it runs: without a DTD there is nothing to expand or fetch.
import xml.etree.ElementTree as ET

from pipeline.errors import CorruptImage, ImageTooLarge, UnsupportedFormat

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_FILTER_PRIMITIVES",
    "check_svg",
]

MAX_BYTES = 5 * 1024 * 1024
MAX_ELEMENTS = 20_000
MAX_DEPTH = 256
MAX_FILTER_PRIMITIVES = 32
# (attribute, cap): above these librsvg's time grows into seconds per primitive at 2000 px.
_PRIMITIVE_CAPS = {
    "feGaussianBlur": ("stdDeviation", 100.0),
    "feDropShadow": ("stdDeviation", 100.0),
    "feMorphology": ("radius", 50.0),
    "feConvolveMatrix": ("order", 9.0),
    "feTurbulence": ("numOctaves", 10.0),
}
_MAX_REGION_FRACTION = 3.0  # a filter region may be up to 3x its element (the default is 1.2x)
_MAX_REGION_USER_UNITS = 16384.0

_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")
_PI = re.compile(rb"<\?(?!xml[\s?])")
_XML_DECL = re.compile(rb"^\s*<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']", re.I)
_URL = re.compile(r"url\(\s*[\"']?\s*([^)\"'\s]*)", re.I)
_IMPORT = re.compile(r"@import", re.I)
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp)[;,]", re.I)
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")
_REFUSED_ELEMENTS = {"script", "foreignObject", "iframe", "embed", "object", "handler", "listener", "include"}


def check_svg(data: bytes) -> None:
    """Raise if the SVG in ``data`` is not acceptable (see the module doc); return if it is."""
    if len(data) > MAX_BYTES:
        raise ImageTooLarge(f"the SVG is {len(data)} bytes; SVG sources are limited to {MAX_BYTES}")
    data = data.removeprefix(b"\xef\xbb\xbf")
    if _DECLARATION.search(data):
        raise UnsupportedFormat("SVG with a DOCTYPE or entity declaration is not accepted")
    if _PI.search(data):
        raise UnsupportedFormat("SVG with processing instructions (such as xml-stylesheet) is not accepted")
    declared = _XML_DECL.match(data)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
        raise UnsupportedFormat("SVG must be encoded as UTF-8")
    root = _parse(data)
    _check_tree(root)


def _parse(data: bytes) -> ET.Element:
    depth = count = 0
    try:
        events = ET.iterparse(io.BytesIO(data), events=("start", "end"))  # noqa: S314 - see the import
        for event, _ in events:
            if event == "start":
                depth += 1
                count += 1
                if depth > MAX_DEPTH:
                    raise ImageTooLarge(f"the SVG nests deeper than {MAX_DEPTH} elements")
                if count > MAX_ELEMENTS:
                    raise ImageTooLarge(f"the SVG has more than {MAX_ELEMENTS} elements")
            else:
                depth -= 1
        return events.root  # type: ignore[attr-defined]  # set once parsing ends; typeshed lacks it
    except ET.ParseError as exc:
        raise CorruptImage("the SVG is not well-formed XML", detail=str(exc)) from None


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _check_tree(root: ET.Element) -> None:
    ids: dict[str, ET.Element] = {}
    primitives = 0
    for el in root.iter():
        tag = _local(el.tag) if isinstance(el.tag, str) else ""
        if tag in _REFUSED_ELEMENTS:
            raise UnsupportedFormat(f"SVG with <{tag}> is not accepted")
        for name, value in el.attrib.items():
            attr = _local(name)
            if attr == "id":
                ids[value] = el
            elif attr == "href" and not (value.startswith("#") or _DATA_IMAGE.match(value)):
                raise UnsupportedFormat("SVG references outside the document are not accepted (href)")
            _check_css(value)
        if tag == "style":
            _check_css("".join(el.itertext()))
        if tag.startswith("fe"):
            primitives += 1
            if primitives > MAX_FILTER_PRIMITIVES:
                raise ImageTooLarge(f"the SVG has more than {MAX_FILTER_PRIMITIVES} filter primitives")
            if tag in _PRIMITIVE_CAPS:
                attr, cap = _PRIMITIVE_CAPS[tag]
                for number in re.split(r"[\s,]+", el.get(attr, "").strip()):
                    if number and _number(number, attr) > cap:
                        raise ImageTooLarge(f"SVG {tag} {attr} is limited to {cap:g}")
        if tag == "filter":
            _check_filter_region(el)
    _check_expanded_size(root, ids)


def _check_css(text: str) -> None:
    if "url(" in text.lower():
        for target in _URL.findall(text):
            if not target.startswith("#"):
                raise UnsupportedFormat("SVG references outside the document are not accepted (url())")
    if _IMPORT.search(text):
        raise UnsupportedFormat("SVG stylesheets may not @import")


def _number(text: str, what: str) -> float:
    match = _NUMBER.match(text)
    if not match:
        raise UnsupportedFormat(f"SVG attribute {what} is not a number")
    value = float(match.group(1))
    return value / 100 if match.group(2) else value


def _check_filter_region(el: ET.Element) -> None:
    user_space = el.get("filterUnits") == "userSpaceOnUse"
    for attr in ("x", "y", "width", "height"):
        raw = el.get(attr)
        if raw is None:
            continue
        value = abs(_number(raw, attr))
        cap = _MAX_REGION_USER_UNITS if user_space and not raw.strip().endswith("%") else _MAX_REGION_FRACTION
        if value > cap:
            raise ImageTooLarge("an SVG filter region is far larger than what it filters")


def _check_expanded_size(root: ET.Element, ids: dict[str, ET.Element]) -> None:
    """Elements rendered once every ``<use>`` is expanded, computed without expanding anything:
    each element weighs 1 + its children + (for ``<use>``) the element it references."""
    weight: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[ET.Element, bool]] = [(root, False)]
    while stack:
        el, done = stack.pop()
        key = id(el)
        if done:
            on_path.discard(key)
            total = 1 + sum(weight[id(child)] for child in el)
            target = _use_target(el, ids)
            if target is not None:
                total += weight[id(target)]
            weight[key] = min(total, MAX_ELEMENTS + 1)  # saturate: the numbers can grow exponentially
            continue
        if key in weight:
            continue
        if key in on_path:
            raise UnsupportedFormat("SVG <use> references form a cycle")
        on_path.add(key)
        stack.append((el, True))
        target = _use_target(el, ids)
        for nxt in [*list(el), *([target] if target is not None else [])]:
            if id(nxt) in on_path:
                raise UnsupportedFormat("SVG <use> references form a cycle")
            if id(nxt) not in weight:
                stack.append((nxt, False))
    if weight[id(root)] > MAX_ELEMENTS:
        raise ImageTooLarge(f"the SVG draws more than {MAX_ELEMENTS} elements once <use> references are expanded")


def _use_target(el: ET.Element, ids: dict[str, ET.Element]) -> ET.Element | None:
    if not isinstance(el.tag, str) or _local(el.tag) != "use":
        return None
    for name, value in el.attrib.items():
        if _local(name) == "href" and value.startswith("#"):
            return ids.get(value[1:])
    return None
