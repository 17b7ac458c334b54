"""Deterministic, photo-like test images made in code (no binary fixtures).

Photo-like matters: flat colour compresses and resizes unrealistically fast. These images have
smooth colour fields (Perlin noise), hard edges (shapes) and sensor-like grain.
"""

from __future__ import annotations

import random

import pyvips

__all__ = ["encode", "photo", "with_orientation"]


def photo(width: int, height: int, *, seed: int = 1, alpha: bool = False) -> pyvips.Image:
    rng = random.Random(seed)
    cell = max(8, min(width, height) // 4)
    bands = [pyvips.Image.perlin(width, height, cell_size=cell, seed=seed * 3 + i) for i in range(3)]
    img = bands[0].bandjoin(bands[1:])  # floats in about -1..1
    img = (img * 90 + [128, 118, 100]).cast("float")
    grain = pyvips.Image.gaussnoise(width, height, sigma=10, mean=0, seed=seed)
    img = img + grain
    img = img.cast("uchar").copy(interpretation="srgb")
    for _ in range(12):
        r = rng.randint(max(2, width // 40), max(3, width // 8))
        img = img.draw_circle(
            [rng.randint(0, 255) for _ in range(3)],
            rng.randint(0, width),
            rng.randint(0, height),
            r,
            fill=True,
        )
    # a marker in the top-left corner so orientation and flips are observable
    mark = max(2, min(width, height) // 10)
    img = img.draw_rect([255, 0, 0], 0, 0, mark, mark, fill=True)
    if alpha:
        a = pyvips.Image.xyz(width, height)[0] * (255 / max(1, width - 1))
        img = img.bandjoin(a.cast("uchar"))
    return img.copy_memory()


def with_orientation(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """``image`` stored so that applying EXIF ``orientation`` displays it as given."""
    inverse = {
        1: lambda i: i,
        2: lambda i: i.flip("horizontal"),
        3: lambda i: i.rot("d180"),
        4: lambda i: i.flip("vertical"),
        5: lambda i: i.rot("d90").flip("horizontal"),
        6: lambda i: i.rot("d270"),
        7: lambda i: i.rot("d270").flip("horizontal"),
        8: lambda i: i.rot("d90"),
    }[orientation]
    stored = inverse(image).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return stored


def encode(image: pyvips.Image, suffix: str = ".jpg", **options: object) -> bytes:
    return image.write_to_buffer(suffix, **options)
