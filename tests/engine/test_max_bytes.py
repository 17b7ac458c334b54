"""`max_bytes`: the highest quality whose output fits, found by binary search, and reported."""

from __future__ import annotations

import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.compile import compile_plan
from pipeline.dsl import decode_job_spec
from pipeline.encode import encode as encode_variant
from pipeline.errors import CannotMeetMaxBytes, SpecError
from tests.engine.conftest import load, run

SOURCE = encode(photo(800, 600, seed=21), ".png")


def _variant(**fields: object):
    return decode_job_spec({"version": 1, "pipeline": [{"id": "v", **fields}]}).pipeline[0]


@pytest.mark.parametrize("fmt", ["webp", "jpeg", "avif", "jxl"])
def test_the_highest_quality_that_fits_is_chosen_and_reported(fmt: str) -> None:
    free = run(SOURCE, {"id": "v", "action": "resize", "width": 400, "format": fmt}).variants[0]
    limit = free.bytes * 6 // 10
    fitted = run(SOURCE, {"id": "v", "action": "resize", "width": 400, "format": fmt, "max_bytes": limit}).variants[0]
    assert fitted.bytes <= limit < free.bytes
    assert fitted.quality is not None and 1 <= fitted.quality < free.quality
    assert (fitted.width, fitted.height) == (400, 300)
    # one step up no longer fits: the search found the highest
    image = load(run(SOURCE, {"id": "v", "action": "resize", "width": 400, "format": "png"}).variants[0].data)
    above = encode_variant(image, _variant(format=fmt, quality=fitted.quality + 1), fmt)
    assert len(above.data) > limit


def test_an_output_that_fits_is_encoded_once_as_without_max_bytes() -> None:
    free, capped = run(
        SOURCE,
        {"id": "a", "format": "webp"},
        {"id": "b", "format": "webp", "max_bytes": 100_000_000},
    ).variants
    assert capped.data == free.data and capped.quality == free.quality == 80


def test_an_impossible_size_fails_the_job_with_its_reason() -> None:
    with pytest.raises(CannotMeetMaxBytes) as failed:
        run(SOURCE, {"id": "big", "format": "jpeg", "max_bytes": 100})
    assert failed.value.code == "cannot_meet_max_bytes"
    assert "variant 'big' cannot fit its max_bytes of 100" in failed.value.public


def test_quality_is_reported_for_lossy_outputs_only() -> None:
    out = run(SOURCE, {"id": "j", "format": "jpeg", "quality": 55}, {"id": "p", "format": "png"},
              {"id": "x", "format": "webp", "lossless": True}).variants  # fmt: skip
    assert [v.quality for v in out] == [55, None, None]


@pytest.mark.parametrize(
    "variant",
    [{"format": "png", "max_bytes": 5000}, {"format": "webp", "lossless": True, "max_bytes": 5000},
     {"format": "gif", "max_bytes": 5000}, {"format": "jpeg", "max_bytes": 99}],
)  # fmt: skip
def test_max_bytes_needs_a_lossy_format(variant: dict) -> None:
    with pytest.raises(SpecError):
        decode_job_spec({"version": 1, "pipeline": [{"id": "v", **variant}]})


def test_the_estimate_charges_every_encode_of_the_search() -> None:
    spec = decode_job_spec(
        {"version": 1, "pipeline": [{"id": "a", "format": "webp"}, {"id": "b", "format": "webp", "max_bytes": 5000}]}
    )
    a, b = compile_plan(spec, 800, 600).nodes
    assert b.encode_cost == pytest.approx(8 * a.encode_cost)


def _animated_gif() -> bytes:
    frames = [photo(120, 80, seed=s) for s in (1, 2, 3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 80)
    return strip.write_to_buffer(".gif")


@pytest.mark.parametrize(
    ("source", "written"),
    [(SOURCE, "webp"), (encode(photo(400, 300, seed=3, alpha=True), ".png"), "webp"),
     (encode(photo(400, 300, seed=4), ".tif"), "webp"), (encode(photo(400, 300, seed=5), ".jpg"), "jpeg"),
     (encode(photo(400, 300, seed=6), ".webp"), "webp")],
)  # fmt: skip
def test_auto_with_max_bytes_writes_a_format_whose_quality_it_can_lower(source: bytes, written: str) -> None:
    """`auto` keeps a lossy source's format; a PNG, TIFF, GIF or SVG one has no quality to lower,
    so the variant is written as WebP (which keeps alpha and animation), within its budget."""
    variant = {"id": "v", "action": "resize", "width": 200, "max_bytes": 4000}
    fitted = run(source, variant).variants[0]
    assert fitted.format == written and fitted.bytes <= 4000 and fitted.quality is not None
    planned = compile_plan(decode_job_spec({"version": 1, "pipeline": [variant]}), 400, 300, source_format="png")
    assert planned.nodes[0].format == "webp"


def test_auto_with_max_bytes_keeps_an_animation() -> None:
    fitted = run(_animated_gif(), {"id": "v", "max_bytes": 20_000}).variants[0]
    assert (fitted.format, fitted.frames) == ("webp", 3) and fitted.bytes <= 20_000
