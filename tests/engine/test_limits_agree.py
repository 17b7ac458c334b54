"""The dry run and the engine agree on every limit: the same spec and source either pass both, with
the same output sizes, or fail both with the same error code. The dry run is the planner alone
(what `POST /v1/specs/validate` runs); the engine decodes a real image of that size.

Small limits keep the images small. Budget rows use the default limits: the engine is handed its
limits, but plans with the planner's defaults until `pipeline/engine.py` passes them on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from devstack.imagegen import encode, photo
from pipeline.compile import plan_issues
from pipeline.dsl import Limits, decode_job_spec
from pipeline.engine import process
from pipeline.errors import PipelineError
from tests.engine.test_hostile import png_header_only

SMALL = Limits(max_output_dimension=1000, max_output_pixels=400_000, max_source_pixels=200_000)


@dataclass(frozen=True)
class Case:
    name: str
    source: tuple[int, int]
    variants: list[dict]
    expect: str | None  # the error code, or None: both succeed
    limits: Limits = field(default=SMALL)


CASES = [
    Case("fits", (600, 300), [{"id": "a", "action": "resize", "width": 200}, {"id": "b", "format": "png"}], None),
    Case("at the dimension limit", (600, 200), [{"id": "a", "action": "resize", "width": 1000}], None),
    Case(
        "one past the dimension limit", (600, 200), [{"id": "a", "action": "resize", "width": 1001}], "output_too_large"
    ),
    Case(
        "pixel limit exactly",
        (600, 300),
        [{"id": "a", "action": "resize", "width": 800, "height": 500, "fit": "fill"}],
        None,
    ),
    Case(
        "one pixel row too many",
        (600, 300),
        [{"id": "a", "action": "resize", "width": 800, "height": 501, "fit": "fill"}],
        "output_too_large",
    ),
    Case(
        "an oversized intermediate step, cropped back afterwards",
        (600, 300),
        [{"id": "a", "steps": [{"op": "resize", "width": 1000}, {"op": "crop", "width": 100, "height": 100}]}],
        "output_too_large",
    ),
    Case(
        "pad past the side limit",
        (600, 300),
        [{"id": "a", "action": "pad", "left": 300, "right": 101}],
        "output_too_large",
    ),
    Case("pad to the side limit", (600, 300), [{"id": "a", "action": "pad", "left": 300, "right": 100}], None),
    Case(
        "rotation's bounding box grows past the pixel limit",
        (650, 300),
        [{"id": "a", "action": "rotate", "angle": 30}],
        "output_too_large",
    ),
    Case("a right-angle turn keeps the pixels", (600, 300), [{"id": "a", "action": "rotate", "angle": 90}], None),
    Case(
        "a variant built from another grows past it",
        (600, 300),
        [
            {"id": "a", "action": "resize", "width": 500},
            {"id": "b", "from": "a", "action": "resize", "width": 900, "height": 900},
        ],
        "output_too_large",
    ),
    Case(
        "contain pads to the box",
        (600, 300),
        [{"id": "a", "action": "resize", "width": 700, "height": 700, "fit": "contain"}],
        "output_too_large",
    ),
    Case(
        "smart cover crop",
        (600, 300),
        [{"id": "a", "action": "resize", "width": 150, "height": 150, "gravity": "attention"}],
        None,
    ),
    Case("source at the pixel limit", (500, 400), [{"id": "a", "action": "resize", "width": 50}], None),
    Case("source one row over", (500, 401), [{"id": "a", "action": "resize", "width": 50}], "image_too_large"),
    Case(
        "crop box outside the image",
        (600, 300),
        [{"id": "a", "action": "crop", "left": 550, "top": 0, "width": 100, "height": 100}],
        "invalid_operation",
    ),
    Case(
        "slow encoder on a small output",
        (64, 48),
        [{"id": "a", "action": "resize", "width": 128, "format": "avif", "effort": 9}],
        None,
        Limits(),
    ),
    Case(
        "over budget whatever the source",
        (64, 48),
        [{"id": "a", "action": "resize", "width": 6000, "height": 6000, "format": "avif", "effort": 9}],
        "over_budget",
        Limits(),
    ),
    Case(
        # a header claiming 64 MP: the engine must refuse it before decoding, or it fails otherwise
        "over budget for this source",
        (8000, 8000),
        [{"id": "a", "format": "avif", "effort": 4}],
        "over_budget",
        Limits(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dry_run_and_engine_agree(case: Case) -> None:
    spec = decode_job_spec({"version": 1, "pipeline": case.variants})
    w, h = case.source
    data = png_header_only(w, h) if w * h > 1_000_000 else encode(photo(w, h, seed=5), ".png", compression=1)

    plan, issues = plan_issues(spec, *case.source, case.limits, source_format="png")
    planned = issues[0].error.code if issues else [n.predicted_size for n in plan.nodes]

    try:
        out = process(data, spec, limits=case.limits)
        ran: str | list[tuple[int, int]] = [(v.width, v.height) for v in out.variants]
    except PipelineError as exc:
        ran = exc.code

    assert planned == ran
    if case.expect is None:
        assert isinstance(ran, list)
    else:
        assert ran == case.expect
