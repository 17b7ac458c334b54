"""Whatever a client sends, the decoder answers with a spec or a SpecError, never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.compile import compile_plan
from pipeline.dsl import Limits, decode_job_spec
from pipeline.errors import InvalidOperation, SpecError

OPS = ["resize", "crop", "rotate", "flip", "flop", "blur", "sharpen", "grayscale", "modulate", "pad", "watermark", "x"]
FIELDS = [
    "width", "height", "fit", "gravity", "left", "top", "aspect_ratio", "angle", "background", "sigma", "flat",
    "brightness", "saturation", "hue", "text", "image", "opacity", "margin", "without_enlargement", "bottom", "right",
]  # fmt: skip
FIT = ["cover", "contain", "fill", "inside", "outside", "bogus"]
GRAVITY = ["centre", "north", "southeast", "attention", "entropy", "up"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(FIT + GRAVITY + ["16:9", "#ffffff", "#12345678", "a.png", "../x", "", "1:0"]),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
steps = st.fixed_dictionaries({"op": st.sampled_from(OPS)}, optional={f: scalars for f in FIELDS})
variants = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c", "Bad id"])},
    optional={
        "from": st.sampled_from(["a", "b", "c", "z"]),
        "steps": st.lists(steps, max_size=4),
        "action": st.sampled_from(OPS),
        "width": scalars,
        "format": st.sampled_from(["auto", "jpeg", "png", "webp", "avif", "gif", "tiff", "heic"]),
        "quality": scalars,
        "lossless": st.booleans(),
        "progressive": st.booleans(),
        "effort": st.integers(-1, 11),
    },
)
specs = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 2, "1"]), "pipeline": st.lists(variants, max_size=4)},
    optional={"metadata": json_values, "webhook_url": scalars, "auto_orient": scalars, "extra": scalars},
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_structured_specs_only_raise_spec_errors(doc: dict) -> None:
    try:
        spec = decode_job_spec(json.dumps(doc, allow_nan=False) if _finite(doc) else doc, Limits())
    except SpecError as exc:
        assert exc.errors and all(e.path.startswith("$") for e in exc.errors)
        return
    # A valid spec always compiles for any source size; only a crop box can fail at plan time.
    for size in ((1, 1), (4000, 3000)):
        try:
            plan = compile_plan(spec, *size)
        except InvalidOperation:
            continue
        assert len(plan.nodes) == len(spec.pipeline)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a busy machine is slow
@given(st.one_of(json_values, st.binary(max_size=64), st.text(max_size=64)))
def test_arbitrary_input_only_raises_spec_errors(doc: object) -> None:
    with contextlib.suppress(SpecError):
        decode_job_spec(doc)


def _finite(doc: object) -> bool:
    try:
        json.dumps(doc, allow_nan=False)
    except ValueError:
        return False
    return True
