from __future__ import annotations

import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.dsl import Limits, decode_job_spec
from pipeline.engine import JobOutput, process


@pytest.fixture(scope="session")
def jpeg_600x400() -> bytes:
    return encode(photo(600, 400, seed=3), ".jpg", Q=90)


def run(data: bytes, *variants: dict, limits: Limits | None = None, assets=None, **job: object) -> JobOutput:
    spec = decode_job_spec({"version": 1, "pipeline": list(variants), **job})
    return process(data, spec, limits=limits, assets=assets)


def load(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "").copy_memory()


def red_corner(image: pyvips.Image) -> str:
    """Which corner holds the red marker devstack.imagegen.photo draws top-left."""
    w, h = image.width, image.height
    s = max(1, min(w, h) // 25)
    corners = {"nw": (0, 0), "ne": (w - s, 0), "sw": (0, h - s), "se": (w - s, h - s)}

    def redness(x: int, y: int) -> float:
        patch = image.crop(x, y, s, s)
        return patch[0].avg() - (patch[1].avg() + patch[2].avg()) / 2

    return max(corners, key=lambda c: redness(*corners[c]))
