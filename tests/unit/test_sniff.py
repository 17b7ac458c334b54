from __future__ import annotations

import pytest

from pipeline.errors import UnsupportedFormat
from pipeline.sniff import sniff


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (len(body) + 4).to_bytes(4, "big") + body + b"\x00" * 16


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"GIF89a\x01\x00", "gif"),
        (b"GIF87a\x01\x00", "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"II*\x00\x08\x00", "tiff"),
        (b"MM\x00*\x00\x00", "tiff"),
        (ftyp(b"avif", b"mif1", b"miaf"), "avif"),
        (ftyp(b"mif1", b"avif"), "avif"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">', "svg"),
        (b"\xef\xbb\xbf  <svg width='1'>", "svg"),
        (b"<!-- hi -->\n<!DOCTYPE svg>\n<svg>", "svg"),
        (ftyp(b"heic", b"mif1", b"heic"), "heic"),
        (ftyp(b"mif1", b"heic"), "heic"),
        (b"\xff\x0a\x00\x00", "jxl"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    ],
)
def test_recognised_formats(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"%PDF-1.7\n", "PDF documents"),
        (b"BM\x00\x00", "BMP is not supported"),
        (b"8BPS\x00\x01", "Photoshop"),
        (ftyp(b"isom", b"mp41"), "neither AVIF nor HEIC"),
        (b"hello world", "not a recognised image"),
        (b"", "not a recognised image"),
        (b"<html><svg>", "not a recognised image"),
    ],
)
def test_refused_formats_say_why(head: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedFormat, match=reason) as info:
        sniff(head)
    assert info.value.code == "unsupported_format"
