"""Output sizes are what libvips' ``thumbnail`` gives for the same full-resolution source and width
(and sharp, which rounds the same way: halves up), whatever the planner's shrink-on-load decode
rounds to; and a job never resamples its decode a second time when one variant fixes its size.

The reference is thumbnail of a PNG: for a JPEG, thumbnail sizes the output from its own
DCT-shrunk decode and can be a pixel off (1234x777 to 77 px wide: 49 high, where 777 x 77 / 1234
= 48.48); PixelFlow sizes from the source, as sharp does."""

from __future__ import annotations

import pytest
import pyvips

from pipeline.compile import compile_plan
from pipeline.dsl import decode_job_spec
from tests.engine.conftest import run

SOURCES = [(6000, 4000), (4032, 3024), (3000, 2000), (1234, 777), (2000, 3000), (5472, 3648)]
WIDTHS = [77, 150, 400, 640, 1080, 1600, 2560]
_HUGE = 10_000_000


@pytest.fixture(scope="module")
def sources() -> dict[tuple[int, int], bytes]:
    # flat images encode and decode fast; sizes, not pixels, are under test
    return {(w, h): pyvips.Image.black(w, h, bands=3).write_to_buffer(".jpg", Q=50) for w, h in SOURCES}


def _thumbnail_size(source: tuple[int, int], width: int) -> tuple[int, int]:
    png = pyvips.Image.black(*source).write_to_buffer(".png", compression=1)  # no shrink-on-load
    image = pyvips.Image.thumbnail_buffer(png, width, height=_HUGE, size="down")
    return image.width, image.height


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_width_is_sized_as_libvips_thumbnail_sizes_it(sources: dict, source: tuple[int, int]) -> None:
    data = sources[source]
    widths = [w for w in WIDTHS if w <= source[0]]
    variants = [{"id": f"w{w}", "action": "resize", "width": w, "format": "jpeg"} for w in widths]
    out = run(data, *variants)
    got = {v.id: (v.width, v.height) for v in out.variants}
    assert got == {f"w{w}": _thumbnail_size(source, w) for w in widths}
    # the plan predicted exactly these sizes
    assert {n.variant.id: n.predicted_size for n in out.plan.nodes} == got


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("width", [150, 400, 1080])
def test_a_single_variant_decodes_at_its_own_size(source: tuple[int, int], width: int) -> None:
    """No second resample: the decode is already the variant's size (the 401 px decode for a 400 px
    variant of a 6000 px source was a planner rounding defect)."""
    spec = decode_job_spec({"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": width}]})
    plan = compile_plan(spec, *source)
    assert plan.decode_size == plan.nodes[0].predicted_size


def test_scale_free_steps_before_the_resize_keep_source_sizing(sources: dict) -> None:
    data = sources[(6000, 4000)]
    out = run(
        data,
        {"id": "rot", "steps": [{"op": "rotate", "angle": 90}, {"op": "resize", "width": 400}], "format": "jpeg"},
        {"id": "sq", "steps": [{"op": "crop", "aspect_ratio": "16:9"}, {"op": "resize", "width": 1600}]},
        {"id": "plain", "action": "resize", "width": 2560},
    )
    sizes = {v.id: (v.width, v.height) for v in out.variants}
    assert sizes["rot"] == (400, 600)  # 4000x6000 after the rotation
    assert sizes["sq"] == (1600, 900)  # the 16:9 box of 6000x4000 is 6000x3375
    assert sizes["plain"] == (2560, 1707)
