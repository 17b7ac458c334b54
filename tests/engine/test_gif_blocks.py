"""pipeline/gif.py reads a GIF's blocks to prove it opaque before decoding. It may say "not
proven" of an opaque GIF; of an intact GIF with a transparent pixel it must never say opaque, and
for a damaged one the engine's decode confirms on the pixels, so no transparency is lost."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import pyvips

from pipeline.gif import gif_is_opaque

_PALETTE = bytes(range(6))  # two colours: a global colour table of size 2 (packed bits 0)


def gif(*frames: tuple[tuple[int, int, int, int], int | None, int], screen: tuple[int, int] = (4, 4)) -> bytes:
    """A GIF89a of frames of colour 0: ((left, top, width, height), the transparent index the
    frame declares or None, disposal). Declaring index 0 makes every pixel of the frame a hole."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + _PALETTE)
    for (left, top, width, height), transparent, disposal in frames:
        packed = (disposal << 2) | int(transparent is not None)
        out += bytes([0x21, 0xF9, 4, packed, 10, 0, transparent or 0, 0])
        out += bytes([0x2C]) + struct.pack("<HHHHB", left, top, width, height, 0)
        out += bytes([2]) + _lzw_solid(width * height) + b"\x00"
    return bytes(out + b"\x3b")


def _lzw_solid(pixels: int) -> bytes:
    """LZW data of ``pixels`` of colour 0, one sub-block: clear code, then a literal 0 with a clear
    after each (3-bit codes), which keeps the code width fixed."""
    bits, length = 0, 0
    for code in [4] + [0, 4] * pixels + [5]:  # clear=4, end=5 for a minimum code size of 2
        bits |= code << length
        length += 3
    data = bits.to_bytes((length + 7) // 8, "little")
    chunks = b""
    for i in range(0, len(data), 255):
        chunk = data[i : i + 255]
        chunks += bytes([len(chunk)]) + chunk
    return chunks


FULL = (0, 0, 4, 4)
HOLES, UNUSED, NONE = 0, 1, None  # a declared transparent index that every pixel uses, that none does


@pytest.mark.parametrize(
    ("frames", "opaque"),
    [
        ([(FULL, NONE, 1)], True),
        ([(FULL, NONE, 0), (FULL, NONE, 1)], True),
        ([(FULL, NONE, 1), ((1, 1, 2, 2), HOLES, 1)], True),  # an optimised frame: its holes show frame 1
        ([(FULL, UNUSED, 1), ((1, 1, 2, 2), HOLES, 1)], True),  # the first frame declares but uses no hole
        ([(FULL, HOLES, 1)], False),  # the first frame's holes
        ([(FULL, HOLES, 1), (FULL, NONE, 1)], False),  # shown before the second frame covers them
        ([(FULL, NONE, 3), ((1, 1, 2, 2), HOLES, 1), (FULL, NONE, 1)], False),  # restores the empty canvas
        ([(FULL, NONE, 1), ((1, 1, 2, 2), NONE, 3), ((1, 1, 2, 2), HOLES, 1)], True),  # restores frame 1
        ([((0, 0, 4, 3), NONE, 1)], False),  # the first frame leaves a row empty
        ([(FULL, NONE, 2), (FULL, NONE, 1)], False),  # cleared to background: decoders may make it clear
        ([(FULL, NONE, 1), (FULL, NONE, 2)], True),  # the last frame's disposal is never seen
        ([(FULL, NONE, 1), ((1, 1, 2, 2), HOLES, 5)], True),
        ([(FULL, NONE, 5), ((1, 1, 2, 2), HOLES, 1)], False),  # an undefined disposal: not proven
    ],
)
def test_the_block_rules(frames: list, opaque: bool) -> None:
    data = gif(*frames)
    assert gif_is_opaque(data) is opaque
    decoded = pyvips.Image.new_from_buffer(data, "", n=-1)  # libvips agrees the file is a GIF
    assert _opaque(decoded) or not opaque  # where the rule says opaque, no decoded pixel is transparent


def test_whatever_is_cut_short_or_foreign_is_not_proven() -> None:
    whole = gif((FULL, NONE, 1), (FULL, NONE, 1))
    assert gif_is_opaque(whole)
    for cut in range(len(whole)):
        assert not gif_is_opaque(whole[:cut]), cut
    assert not gif_is_opaque(b"\x89PNG\r\n\x1a\n" + whole[8:])
    assert not gif_is_opaque(whole[:-1] + b"\x00")  # an unknown block where the trailer was


def test_a_decoded_transparent_pixel_is_never_called_opaque() -> None:
    """GIFs from libvips' writer, which marks a later frame's unchanged pixels transparent (so
    its GIFs decode as RGBA): whenever the blocks say opaque, every decoded pixel is."""
    rng = np.random.default_rng(7)
    proven = 0
    for i in range(30):
        first = rng.integers(0, 4, (12, 16, 3), dtype=np.uint8) * 80
        second = first.copy()
        second[rng.integers(0, 12) :] = rng.integers(0, 4, 3, dtype=np.uint8) * 80  # some rows change
        stack = np.concatenate([first, second, first])
        if i % 3 == 0:  # a real hole in the second frame
            stack = np.concatenate([stack, np.full((*stack.shape[:2], 1), 255, np.uint8)], axis=2)
            stack[14:18, 3:9, 3] = 0
        image = pyvips.Image.new_from_array(stack).copy(interpretation="srgb")
        image.set_type(pyvips.GValue.gint_type, "page-height", 12)
        data = image.gifsave_buffer()
        if gif_is_opaque(data):
            proven += 1
            assert _opaque(pyvips.Image.new_from_buffer(data, "", n=-1)), i
    assert proven >= 10  # the rule proves libvips' own opaque GIFs opaque


def _opaque(decoded: pyvips.Image) -> bool:
    return decoded.bands < 4 or decoded.extract_band(3).min() == 255  # RGB: no frame declared a hole


def test_the_holes_these_tests_make_are_real() -> None:
    assert not _opaque(pyvips.Image.new_from_buffer(gif((FULL, HOLES, 1)), "", n=-1))
    assert _opaque(pyvips.Image.new_from_buffer(gif((FULL, UNUSED, 1)), "", n=-1))


def test_damaged_gifs_never_lose_their_transparency() -> None:
    """Bytes changed at random in GIFs (some transparent): the blocks may still look opaque while a
    garbled frame leaves pixels undrawn. Whenever the engine's decode drops the alpha, thumbnail's
    decode of the same file is opaque too (254: its float path truncates where ours rounds)."""
    from pipeline.compile import compile_plan
    from pipeline.dsl import Limits, decode_job_spec
    from pipeline.errors import PipelineError
    from pipeline.load import decode, probe
    from tests.engine.test_animation import colour_animation

    spec = decode_job_spec({"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 20, "format": "gif"}]})
    seeds = [
        gif((FULL, UNUSED, 1), ((1, 1, 2, 2), HOLES, 1)),
        colour_animation(40, 30, 4),
        colour_animation(40, 30, 4, transparent=True),
    ]
    rng = np.random.default_rng(3)
    dropped = 0
    for i in range(400):
        data = bytearray(seeds[i % len(seeds)])
        for at in rng.integers(0, len(data), rng.integers(1, 5)):
            data[at] = rng.integers(0, 256)
        try:
            info = probe(bytes(data), Limits())
            plan = compile_plan(spec, info.width, info.height, source_format=info.format, frames=info.pages)
            ours = decode(bytes(data), plan, auto_orient=True).copy_memory()
            theirs = pyvips.Image.thumbnail_buffer(
                bytes(data), plan.decode_size[0], height=10**7, size="down", option_string="fail_on=error,n=-1"
            ).copy_memory()
        except (PipelineError, pyvips.Error):
            continue  # refused as corrupt: nothing is lost
        if ours.bands == 3 and info.pages > 1:
            dropped += 1
            assert theirs.bands == 3 or theirs.extract_band(3).min() >= 254, i
    assert dropped >= 50  # the fast path did run on damaged files
