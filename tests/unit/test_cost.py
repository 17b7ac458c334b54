"""The planner's cost estimate, its budget, and every limit it checks before any pixel is read."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from pipeline.compile import compile_plan, plan_issues, spec_issues
from pipeline.dsl import Limits, decode_job_spec
from pipeline.dsl.steps import STEP_TYPES, Blur, Resize
from pipeline.errors import ImageTooLarge, InvalidOperation, OutputTooLarge, OverBudget
from pipeline.formats import FORMATS
from pipeline.geometry import resize_plan

ROOT = Path(__file__).resolve().parents[2]


def doc_spec() -> dict:
    """The example spec of docs/job-spec.md (its first JSON block), less its webhook."""
    block = re.search(r"```json\n(.*?)```", (ROOT / "docs" / "job-spec.md").read_text(), re.S)
    assert block is not None, "docs/job-spec.md's example spec moved"
    body = json.loads(block.group(1))
    del body["webhook_url"]
    return body


# The job that started this: measured at 277-343 s, far past any deadline.
HUGE_AVIF = {
    "version": 1,
    "pipeline": [{"id": "poster", "action": "resize", "width": 9000, "height": 9000, "format": "avif", "effort": 9}],
}


def spec(*variants: dict):
    return decode_job_spec({"version": 1, "pipeline": list(variants)})


def codes(issues) -> list[tuple[str, str]]:
    return [(i.path, i.error.code) for i in issues]


def test_cost_is_per_variant_and_total() -> None:
    plan = compile_plan(
        spec(
            {"id": "a", "action": "resize", "width": 1000, "format": "jpeg"},
            {"id": "b", "from": "a", "action": "blur", "sigma": 2, "format": "png"},
        ),
        4000,
        3000,
    )
    a, b = plan.nodes
    assert a.format == "jpeg" and b.format == "png"
    assert a.encode_cost == pytest.approx(FORMATS["jpeg"].ms_per_mp[0] * 0.75)
    assert b.steps_cost == pytest.approx((Blur.ms_per_mp + 2 * Blur.ms_per_mp_per_sigma) * 0.75)
    assert plan.cost == pytest.approx(plan.decode_cost + a.cost + b.cost)
    assert plan.decode_cost > 0


@pytest.mark.parametrize(
    ("slow", "fast", "at_least"),
    [
        ({"format": "avif", "effort": 9}, {"format": "jpeg"}, 1000),
        ({"format": "avif", "effort": 9}, {"format": "avif"}, 100),  # default effort 2
        ({"format": "webp", "effort": 6}, {"format": "webp", "effort": 4}, 2),
        ({"format": "png", "effort": 9}, {"format": "png", "effort": 0}, 10),
        ({"format": "webp", "lossless": True}, {"format": "webp"}, 3),
        ({"format": "avif", "lossless": True}, {"format": "avif"}, 2),
    ],
)
def test_encoder_cost_follows_format_and_effort(slow: dict, fast: dict, at_least: float) -> None:
    plan = compile_plan(spec({"id": "slow", **slow}, {"id": "fast", **fast}), 1000, 1000)
    slow_node, fast_node = plan.nodes
    assert slow_node.encode_cost >= at_least * fast_node.encode_cost


ONE_OF_EACH = [
    {"op": "resize", "width": 10},
    {"op": "crop", "aspect_ratio": "1:1", "gravity": "entropy"},
    {"op": "rotate", "angle": 30},
    {"op": "flip"},
    {"op": "flop"},
    {"op": "blur", "sigma": 1},
    {"op": "sharpen"},
    {"op": "grayscale"},
    {"op": "modulate", "hue": 10},
    {"op": "pad", "left": 4},
    {"op": "watermark", "text": "x"},
]


def test_every_op_and_encoder_effort_has_a_weight() -> None:
    steps = spec({"id": "a", "steps": ONE_OF_EACH}).pipeline[0].steps
    assert {type(s) for s in steps} == set(STEP_TYPES)
    for step in steps:
        assert step.cost((100, 100), (100, 100)) > 0 or step.__struct_config__.tag == "crop"
    for f in FORMATS.values():  # one rate per effort, lossless too; one without effort
        if f.encoder is not None:
            rates = len(f.ms_per_mp), len(f.lossless_ms_per_mp or f.ms_per_mp)
            assert rates == ((f.effort.hi - f.effort.lo + 1,) * 2 if f.effort else (1, 1)), f.name


def test_resize_charges_the_enlargement_by_output_and_the_reduction_by_input() -> None:
    down = Resize(width=1000).cost((4000, 4000), (1000, 1000))
    up = Resize(width=4000).cost((1000, 1000), (4000, 4000))
    assert down == pytest.approx(Resize.reduce_ms_per_mp * 16)
    assert up == pytest.approx(Resize.enlarge_ms_per_mp * 16)
    assert Blur(sigma=50).cost((1000, 1000), (1000, 1000)) > Blur(sigma=1).cost((1000, 1000), (1000, 1000))


def test_auto_format_is_priced_once_the_source_is_known() -> None:
    s = spec({"id": "a"})
    unknown = compile_plan(s, 1000, 1000).nodes[0]
    gif = compile_plan(s, 1000, 1000, source_format="gif").nodes[0]
    assert unknown.format is None and gif.format == "gif"
    assert unknown.encode_cost == pytest.approx(FORMATS["jpeg"].ms_per_mp[0])  # the cheapest `auto` can be
    assert gif.encode_cost == pytest.approx(FORMATS["gif"].ms_per_mp[6])  # gif's default effort 7


@pytest.mark.parametrize("size", [(640, 480), (6000, 4000), (10_000, 10_000)])
def test_default_budget_admits_the_readme_and_examples(size: tuple[int, int]) -> None:
    for body in (doc_spec(), json.loads((ROOT / "examples" / "job.json").read_text())):
        plan = compile_plan(decode_job_spec(body), *size, source_format="jpeg")
        assert plan.cost < Limits().max_job_cost / 20


def test_default_budget_refuses_a_huge_slow_avif() -> None:
    with pytest.raises(OverBudget, match=r"variant 'poster' would cost about [\d,]+ units .* avif at effort 9"):
        compile_plan(decode_job_spec(HUGE_AVIF), 8000, 8000, source_format="jpeg")
    # and already before the source is known: the output size does not depend on it
    (issue,) = spec_issues(decode_job_spec(HUGE_AVIF))
    assert issue.path == "$.pipeline[0]" and isinstance(issue.error, OverBudget)
    assert "at least" in issue.error.public


@pytest.mark.parametrize(
    ("variant", "over"),
    [
        ({"action": "resize", "width": 4000, "height": 4000, "format": "avif", "effort": 7}, True),  # fixed: cover
        ({"action": "resize", "width": 6000, "height": 6000, "fit": "contain", "format": "gif", "effort": 10}, True),
        ({"action": "resize", "width": 4000, "height": 4000, "fit": "inside", "format": "avif", "effort": 9}, False),
        ({"format": "avif", "effort": 9}, False),  # depends on the source
        ({"action": "resize", "width": 4000, "height": 4000, "without_enlargement": True, "format": "avif"}, False),
        ({"action": "resize", "width": 500, "height": 500, "format": "avif", "effort": 9}, False),
    ],
)
def test_spec_issues_refuse_only_what_every_source_would_break(variant: dict, over: bool) -> None:
    issues = spec_issues(spec({"id": "x", **variant}))
    assert codes(issues) == ([("$.pipeline[0]", "over_budget")] if over else [])


def test_spec_issues_check_the_output_limits_at_fixed_sizes() -> None:
    s = spec(
        {"id": "ok", "action": "resize", "width": 100}, {"id": "x", "action": "resize", "width": 15000, "height": 10000}
    )
    assert codes(spec_issues(s)) == [("$.pipeline[1].steps[0]", "output_too_large")]


def test_spec_issues_follow_fixed_sizes_through_steps_and_from() -> None:
    s = spec(
        {"id": "cheap", "action": "resize", "width": 100},
        {"id": "box", "action": "resize", "width": 3000, "height": 3000, "format": "jpeg"},
        {"id": "padded", "from": "box", "action": "pad", "left": 16000, "format": "jpeg"},
        {"id": "slow", "from": "box", "action": "sharpen", "format": "avif", "effort": 9},
    )
    assert codes(spec_issues(s)) == [("$.pipeline[2].steps[0]", "output_too_large"), ("$.pipeline[3]", "over_budget")]


def test_budget_names_each_variant_over_it_alone_or_else_the_costliest() -> None:
    variants = [{"id": f"v{i}", "action": "resize", "width": 2000, "height": 2000, "format": "webp"} for i in range(3)]
    s = spec(*variants, {"id": "big", "action": "resize", "width": 3000, "height": 3000, "format": "webp"})
    plan = compile_plan(s, 3000, 3000)
    budget = int(plan.cost) - 1  # no variant alone is over it
    _, issues = plan_issues(s, 3000, 3000, Limits(max_job_cost=budget))
    assert codes(issues) == [("$.pipeline[3]", "over_budget")]
    _, issues = plan_issues(s, 3000, 3000, Limits(max_job_cost=100))
    assert codes(issues) == [(f"$.pipeline[{i}]", "over_budget") for i in range(4)]


def test_plan_issues_check_every_limit_the_engine_checks() -> None:
    s = spec(
        {"id": "ok", "action": "resize", "width": 100},
        {
            "id": "wide",
            "steps": [
                {"op": "resize", "width": 500},
                {"op": "pad", "left": 600},
                {"op": "crop", "width": 10, "height": 10},
            ],
        },
        {"id": "tall", "from": "ok", "action": "resize", "height": 700, "format": "png"},
    )
    limits = Limits(max_output_dimension=1000, max_output_pixels=300_000, max_source_pixels=1_000_000)
    plan, issues = plan_issues(s, 2000, 1000, limits)
    assert plan is not None
    assert codes(issues) == [
        ("$.source", "image_too_large"),
        ("$.pipeline[1].steps[1]", "output_too_large"),  # 1100 px wide after the pad; the crop comes too late
        ("$.pipeline[2].steps[0]", "output_too_large"),  # 1400x700 pixels
    ]
    assert issues[1].error.public == (
        "variant 'wide' would be 1100x250; the limits are 1000 px a side and 300000 pixels"
    )
    with pytest.raises(ImageTooLarge):
        compile_plan(s, 2000, 1000, limits)
    with pytest.raises(OutputTooLarge, match="'wide'"):
        compile_plan(s, 1000, 500, limits)


def test_an_impossible_step_stops_the_plan_at_its_path() -> None:
    s = spec(
        {"id": "a", "action": "resize", "width": 10},
        {"id": "b", "action": "crop", "left": 50, "top": 0, "width": 60, "height": 10},
    )
    plan, issues = plan_issues(s, 100, 100)
    assert plan is None and codes(issues) == [("$.pipeline[1].steps[0]", "invalid_operation")]
    with pytest.raises(InvalidOperation):
        compile_plan(s, 100, 100)


@pytest.mark.parametrize("fit", ["cover", "contain", "fill", "inside", "outside"])
@pytest.mark.parametrize("without_enlargement", [False, True])
@pytest.mark.parametrize("box", [(300, 200), (300, None), (None, 200)])
def test_fixed_size_agrees_with_resize_geometry(fit: str, without_enlargement: bool, box: tuple) -> None:
    step = Resize(width=box[0], height=box[1], fit=fit, without_enlargement=without_enlargement)
    finals = {resize_plan(step, w, h).final for w, h in itertools.product((1, 37, 299, 300, 1000, 7919), repeat=2)}
    fixed = step.fixed_size()
    if fixed is not None:
        assert finals == {fixed}
    else:
        assert len(finals) > 1
