"""What a GIF's block structure says before any pixel is decoded.

libvips decodes a GIF as RGBA when any frame declares a transparent colour index, and its resize
then premultiplies that alpha and resizes in float, though most such GIFs (optimised animations
made from video) have no transparent pixel at all. Whether one can have one is written in its
blocks. The first frame is drawn on an empty (transparent) canvas: if it covers the whole canvas
and has no pixel of its transparent index (it declares none, or decoding that one frame shows
none), the canvas is opaque. A later frame draws over what is there (its transparent pixels
leave the pixels below), so the canvas stays opaque unless the frame before it was disposed of
by clearing its area to the background (disposal 2, which decoders may make transparent), or by
restoring what was under it when that was the empty canvas (disposal 3 after the first frame).
Optimised GIFs, with sub-rectangle frames and a transparent index for unchanged pixels, are
opaque by this rule: proving it costs reading the blocks and at most decoding the first frame.

The blocks describe an intact file. A damaged frame (its compressed data cut short or garbled)
can leave pixels undrawn that its descriptor covers, and decoders keep such files; so the caller
confirms on the decoded pixels (pipeline/load.py) and this is the cheap first answer.
"""

from __future__ import annotations

import struct

from pipeline.vips import load_bytes

__all__ = ["gif_is_opaque"]

_SIGNATURES = (b"GIF87a", b"GIF89a")
_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_GRAPHIC_CONTROL = 0xF9
_HAS_COLOUR_TABLE, _TRANSPARENT_INDEX = 0x80, 0x01
# disposal methods that leave the canvas opaque for the next frame: unspecified, keep, restore
# previous (2, clear to background, is what leaves holes)
_RESTORE_PREVIOUS = 3
_KEEPS = frozenset({0, 1, _RESTORE_PREVIOUS})
_SCREEN_END = 13  # signature (6) and logical screen descriptor (7)
_IMAGE_DESCRIPTOR = 10  # separator, left, top, width, height, packed


def gif_is_opaque(data: bytes, *, fail_on: str = "error") -> bool:
    """True when the blocks prove every pixel of every frame opaque, if every frame's data is
    intact (see the module's docstring). Anything unexpected (a truncated file, an unknown block
    or disposal) says False."""
    first_may_have_holes = _later_frames_keep_it_opaque(data)
    if first_may_have_holes is None:
        return False
    if not first_may_have_holes:
        return True
    first = load_bytes(data, page=0, n=1, fail_on=fail_on)
    return not first.hasalpha() or first.extract_band(first.bands - 1).min() == 255


def _later_frames_keep_it_opaque(data: bytes) -> bool | None:
    """None: not proven. Else proven opaque if the first frame is, which may have transparent
    pixels (True) or cannot (False)."""
    if len(data) < _SCREEN_END or data[:6] not in _SIGNATURES:
        return None
    width, height = struct.unpack_from("<HH", data, 6)
    pos = _SCREEN_END + _colour_table_bytes(data[10])
    frames, transparent, disposal, disposed, first_transparent = 0, False, 0, 0, False
    while 0 <= pos < len(data):
        block = data[pos]
        if block == _TRAILER:
            return first_transparent if frames > 0 else None
        if block == _EXTENSION:
            if pos + 3 >= len(data):
                return None
            if data[pos + 1] == _GRAPHIC_CONTROL and data[pos + 2] >= 1:  # for the next frame
                transparent, disposal = bool(data[pos + 3] & _TRANSPARENT_INDEX), (data[pos + 3] >> 2) & 7
            pos = _after_sub_blocks(data, pos + 2)
        elif block == _IMAGE:
            if pos + _IMAGE_DESCRIPTOR > len(data):
                return None
            if frames == 0:
                if struct.unpack_from("<HHHH", data, pos + 1) != (0, 0, width, height):
                    return None
                first_transparent = transparent
            elif disposed not in _KEEPS or (disposed == _RESTORE_PREVIOUS and frames == 1):
                return None
            pos += _IMAGE_DESCRIPTOR + _colour_table_bytes(data[pos + 9])
            pos = _after_sub_blocks(data, pos + 1)  # after the LZW minimum code size
            frames, transparent, disposal, disposed = frames + 1, False, 0, disposal
        else:
            return None
    return None  # no trailer: cut short


def _colour_table_bytes(packed: int) -> int:
    return 3 * (2 << (packed & 7)) if packed & _HAS_COLOUR_TABLE else 0


def _after_sub_blocks(data: bytes, pos: int) -> int:
    """Where a chain of length-prefixed sub-blocks ends (after its zero terminator), -1 if cut."""
    end = len(data)
    while pos < end:
        size = data[pos]
        if size == 0:
            return pos + 1
        pos += 1 + size
    return -1
