"""The planner: shrink-on-load scale, what is materialised, predicted sizes."""

from __future__ import annotations

import pytest

from pipeline.compile import compile_plan
from pipeline.dsl import decode_job_spec
from pipeline.dsl.steps import Crop, Resize, Rotate
from pipeline.errors import InvalidOperation
from pipeline.geometry import crop_box, gravity_offset, resize_plan, rotated_size


def spec(*variants: dict):
    return decode_job_spec({"version": 1, "pipeline": list(variants)})


def test_decode_is_sized_for_the_largest_variant() -> None:
    s = spec(
        {"id": "big", "action": "resize", "width": 2048},
        {"id": "mid", "action": "resize", "width": 800},
        {"id": "sq", "action": "resize", "width": 200, "height": 200},
    )
    plan = compile_plan(s, 6000, 4000)
    assert plan.decode_size == (2048, 1365)
    assert plan.materialize_source  # three variants read the decoded pixels
    assert [n.predicted_size for n in plan.nodes] == [(2048, 1365), (800, 533), (200, 200)]


def test_cover_needs_the_larger_scale() -> None:
    plan = compile_plan(spec({"id": "a", "action": "resize", "width": 300, "height": 300}), 6000, 3000)
    assert plan.decode_size == (600, 300)
    assert not plan.materialize_source


def test_scale_free_steps_before_resize_keep_shrink_on_load() -> None:
    s = spec({"id": "a", "steps": [{"op": "rotate", "angle": 90}, {"op": "grayscale"}, {"op": "resize", "width": 100}]})
    plan = compile_plan(s, 4000, 2000)  # after rotation 2000x4000 -> 100x200
    assert plan.decode_size == (200, 100)  # decoded before the rotation
    assert plan.materialize_source  # rot90 reads out of order
    assert plan.nodes[0].predicted_size == (100, 200)


@pytest.mark.parametrize(
    "steps",
    [
        [{"op": "crop", "width": 100, "height": 100}, {"op": "resize", "width": 50}],
        [{"op": "blur", "sigma": 3}, {"op": "resize", "width": 50}],
        [{"op": "rotate", "angle": 45}, {"op": "resize", "width": 50}],
        [],
    ],
)
def test_pixel_scale_dependent_steps_need_full_resolution(steps: list) -> None:
    assert compile_plan(spec({"id": "a", "steps": steps}), 4000, 3000).decode_size == (4000, 3000)


def test_without_enlargement_never_decodes_above_source() -> None:
    s = spec({"id": "a", "steps": [{"op": "resize", "width": 9000, "without_enlargement": True}]})
    plan = compile_plan(s, 1000, 500)
    assert plan.decode_size == (1000, 500)
    assert plan.nodes[0].predicted_size == (1000, 500)


def test_from_chain_materialises_only_shared_parents() -> None:
    s = spec(
        {"id": "a", "action": "resize", "width": 1000},
        {"id": "b", "from": "a", "action": "resize", "width": 100},
        {"id": "c", "from": "b", "action": "blur", "sigma": 1},
    )
    plan = compile_plan(s, 2000, 1000)
    assert [(n.variant.id, n.parent, n.materialize) for n in plan.nodes] == [
        ("a", None, True),
        ("b", "a", True),
        ("c", "b", False),
    ]
    assert not plan.materialize_source  # one root reads the source, in order


def test_variants_with_the_same_parent_and_steps_share_their_pixels() -> None:
    s = spec(
        {"id": "w", "action": "resize", "width": 640, "format": "webp"},
        {"id": "j", "action": "resize", "width": 640, "format": "jpeg", "quality": 70},
        {"id": "other", "action": "resize", "width": 320, "format": "jpeg"},
        {"id": "child", "from": "w", "action": "resize", "width": 640},  # same steps, other parent
        {"id": "twin", "from": "w", "steps": [{"op": "resize", "width": 640}], "format": "png"},
    )
    plan = compile_plan(s, 2000, 1000)
    nodes = {n.variant.id: n for n in plan.nodes}
    assert {k: n.pixels_of for k, n in nodes.items()} == {
        "w": None, "j": "w", "other": None, "child": None, "twin": "child"
    }  # fmt: skip
    assert nodes["w"].materialize and nodes["child"].materialize  # read twice: held in memory
    assert not nodes["other"].materialize
    assert nodes["j"].steps_cost == 0 < nodes["w"].steps_cost  # the dry run charges the work once
    assert nodes["j"].encode_cost > 0 and nodes["j"].predicted_size == nodes["w"].predicted_size


def test_the_costliest_family_is_built_first_and_each_family_in_order() -> None:
    s = spec(
        {"id": "small", "action": "resize", "width": 320, "format": "webp"},
        {"id": "small_jpeg", "action": "resize", "width": 320, "format": "jpeg"},
        {"id": "big_jpeg", "action": "resize", "width": 2560, "format": "jpeg"},
        {"id": "big", "action": "resize", "width": 2560, "format": "webp"},
        {"id": "crop", "from": "small", "action": "crop", "width": 100, "height": 100},
        {"id": "mid", "action": "resize", "width": 1280, "format": "webp"},
    )
    plan = compile_plan(s, 6000, 4000, source_format="jpeg")
    order = [n.variant.id for n in plan.work_order()]
    assert order == ["big_jpeg", "big", "mid", "small", "small_jpeg", "crop"]
    assert sorted(order) == sorted(n.variant.id for n in plan.nodes)


@pytest.mark.parametrize(
    ("step", "size", "scaled", "final"),
    [
        (Resize(width=100), (400, 200), (100, 50), (100, 50)),
        (Resize(height=100), (400, 200), (200, 100), (200, 100)),
        (Resize(width=100, height=100, fit="cover"), (400, 200), (200, 100), (100, 100)),
        (Resize(width=100, height=100, fit="contain"), (400, 200), (100, 50), (100, 100)),
        (Resize(width=100, height=100, fit="fill"), (400, 200), (100, 100), (100, 100)),
        (Resize(width=100, height=100, fit="inside"), (400, 200), (100, 50), (100, 50)),
        (Resize(width=100, height=100, fit="outside"), (400, 200), (200, 100), (200, 100)),
        (Resize(width=800, fit="inside", without_enlargement=True), (400, 200), (400, 200), (400, 200)),
        (Resize(width=800, height=800, without_enlargement=True), (400, 200), (400, 200), (400, 200)),
        (Resize(width=800, height=50, fit="fill", without_enlargement=True), (400, 200), (400, 50), (400, 50)),
        (Resize(width=1), (10000, 10), (1, 1), (1, 1)),
    ],
)
def test_resize_geometry(step: Resize, size: tuple, scaled: tuple, final: tuple) -> None:
    plan = resize_plan(step, *size)
    assert (plan.scaled, plan.final) == (scaled, final)


@pytest.mark.parametrize(
    ("gravity", "expected"),
    [
        ("centre", (45, 20)),
        ("north", (45, 0)),
        ("northeast", (90, 0)),
        ("east", (90, 20)),
        ("southeast", (90, 40)),
        ("south", (45, 40)),
        ("southwest", (0, 40)),
        ("west", (0, 20)),
        ("northwest", (0, 0)),
    ],
)
def test_gravity_offsets(gravity: str, expected: tuple) -> None:
    assert gravity_offset(gravity, (100, 50), (10, 10)) == expected


def test_gravity_margin_moves_away_from_the_edge() -> None:
    assert gravity_offset("southeast", (100, 50), (10, 10), margin=5) == (85, 35)


def test_crop_boxes() -> None:
    assert crop_box(Crop(aspect_ratio="1:1"), 400, 200).width == 200
    box = crop_box(Crop(aspect_ratio="16:9", gravity="north"), 1600, 1600)
    assert (box.left, box.top, box.width, box.height) == (0, 0, 1600, 900)
    box = crop_box(Crop(width=5000, height=10), 400, 200)  # gravity-placed boxes clamp to the image
    assert (box.width, box.height) == (400, 10)
    with pytest.raises(InvalidOperation, match="lies outside"):
        crop_box(Crop(left=390, top=0, width=20, height=20), 400, 200)


@pytest.mark.parametrize(
    ("angle", "expected"), [(90, (200, 400)), (-90, (200, 400)), (180, (400, 200)), (360, (400, 200))]
)
def test_right_angle_rotation_sizes(angle: float, expected: tuple) -> None:
    assert rotated_size(Rotate(angle=angle), 400, 200) == expected


@pytest.mark.parametrize(
    ("width", "shrink", "streamed"),
    [
        (400, 8, (750, 500)),  # libvips' thumbnail would decode 1500x1000 and resize twice as far
        (750, 8, (750, 500)),
        (751, 4, (1500, 1000)),
        (2560, 2, (3000, 2000)),  # thumbnail: the full 24 MP
        (3001, 1, (3001, 2001)),
    ],
)
def test_a_jpeg_decodes_at_the_smallest_dct_scale_that_covers_every_variant(
    width: int, shrink: int, streamed: tuple[int, int]
) -> None:
    one = compile_plan(spec({"id": "a", "action": "resize", "width": width}), 6000, 4000, source_format="jpeg")
    assert (one.jpeg_shrink, one.decode_size, one.materialize_source) == (shrink, streamed, False)
    # held in memory for several variants, the DCT-scaled decode is first reduced to what the
    # largest needs, so every variant resizes from the smallest image that serves them all
    two = spec({"id": "a", "action": "resize", "width": width}, {"id": "t", "action": "resize", "width": 100})
    held = compile_plan(two, 6000, 4000, source_format="jpeg")
    assert (held.jpeg_shrink, held.decode_size, held.materialize_source) == (
        shrink,
        (width, round(width * 2 / 3)),
        True,
    )
    assert [n.predicted_size for n in held.nodes][1] == (100, 67)  # sized from the source all the same
    assert compile_plan(two, 6000, 4000, source_format="png").jpeg_shrink == 1
