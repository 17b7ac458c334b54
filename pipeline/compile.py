"""Compile a validated spec plus the source's size into an explicit execution plan.

The plan is a DAG in topological order. It decides before any pixel is read:
- the decode scale: shrink-on-load to the size the largest root variant needs, never more;
- which images are materialised in memory: a decoded source or a variant read by several
  consumers (otherwise libvips would re-run the decode once per consumer), and the source when a
  step needs random access (the decoder streams top to bottom);
- which variants make the same pixels (same parent, same steps: the usual responsive set, each
  width in two formats): those run their steps once and are only encoded apart;
- every variant's predicted output size and estimated cost (shown by the dry-run API);
- whether the job stays within its limits: the source's pixels, every step's output size (the
  engine checks the same after each step), and the cost budget. ``compile_plan`` raises the first
  problem, as the engine would fail; ``plan_issues`` lists them all for the dry run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from pipeline.cost import decode_cost, encode_cost
from pipeline.dsl.decode import topological_order
from pipeline.dsl.job import JobSpec
from pipeline.dsl.limits import Limits
from pipeline.dsl.steps import Resize, Step
from pipeline.dsl.variant import Variant, effective_effort, kept_metadata, output_format
from pipeline.errors import ImageTooLarge, OutputTooLarge, OverBudget, PipelineError
from pipeline.formats import FORMATS, auto_formats
from pipeline.geometry import pixels, resize_plan

__all__ = [
    "Plan",
    "PlanIssue",
    "PlanNode",
    "check_output_size",
    "check_source_size",
    "compile_plan",
    "decode_size",
    "jpeg_shrink",
    "plan_issues",
    "spec_issues",
    "through_logical",
]


@dataclass(frozen=True, slots=True)
class PlanNode:
    variant: Variant
    parent: str | None  # None: the decoded source
    materialize: bool  # keep pre-encode pixels in memory for the variants built `from` this one
    predicted_size: tuple[int, int]
    format: str | None  # the encoder; None: `auto` while the source's format is unknown
    steps_cost: float  # cost units (pipeline.cost): this variant's steps (0 when it shares pixels)
    encode_cost: float  # and its encoder (for `auto` of unknown source: the cheapest it can be)
    pixels_of: str | None = None  # an earlier variant with the same parent and steps: its pixels, encoded anew
    frames: int = 1  # an animated source's frames this variant keeps (1: its first frame)

    @property
    def cost(self) -> float:
        return self.steps_cost + self.encode_cost


@dataclass(frozen=True, slots=True)
class Plan:
    source_size: tuple[int, int]
    decode_size: tuple[int, int]
    materialize_source: bool
    nodes: tuple[PlanNode, ...]
    decode_cost: float
    # A JPEG is decoded at 1/jpeg_shrink by its DCT (see jpeg_shrink()); then, if the decode is
    # held for several variants, reduced to decode_size once.
    jpeg_shrink: int = 1
    # A variant keeps the colour profile: the decode stays in it (pipeline.metadata)
    keep_profile: bool = False
    # Every frame of an animated source is decoded (some variant keeps the animation)
    frames: int = 1

    @property
    def cost(self) -> float:
        """The job's estimated work in cost units: one decode plus every variant."""
        return self.decode_cost + sum(n.cost for n in self.nodes)

    def work_order(self) -> tuple[PlanNode, ...]:
        """The nodes in the order to build and encode them: families (variants tied by `from` or
        shared pixels) costliest first, each family in its topological order. With encoders
        running side by side, the longest encode then starts first instead of last (a 2560 px
        WebP is half a responsive set's encode time)."""
        family: dict[str, str] = {}
        for n in self.nodes:  # topological: a node's parent and twin are already placed
            tie = n.pixels_of or n.parent
            family[n.variant.id] = family[tie] if tie is not None else n.variant.id
        cost: dict[str, float] = {}
        for n in self.nodes:
            cost[family[n.variant.id]] = cost.get(family[n.variant.id], 0.0) + n.cost
        return tuple(sorted(self.nodes, key=lambda n: -cost[family[n.variant.id]]))  # stable: keeps each family's order


@dataclass(frozen=True, slots=True)
class PlanIssue:
    """A reason the job would fail, located in the spec (``$.source``: the source's size)."""

    path: str
    error: PipelineError


def _needed_scale(variant: Variant, width: int, height: int) -> float:
    """The smallest fraction of full resolution this root variant can start from unchanged."""
    w, h = width, height
    for step in variant.steps:
        if isinstance(step, Resize):
            # the exact factors, not the rounded sizes: a 400 px variant of a 6000 px source needs
            # a 400 px decode, and a 401 px one would be resampled a second time
            plan = resize_plan(step, w, h)
            return min(1.0, max(plan.scale_x, plan.scale_y))
        if not step.scale_free:
            return 1.0
        w, h = step.output_size(w, h)
    return 1.0


_FLOAT_SLACK = 1e-6  # 6000 * (400 / 6000) may come out a hair above 400


def decode_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size shrink-on-load produces: the longer side rounded up so no variant is starved,
    the other side following the aspect ratio the way libvips' thumbnail rounds it."""
    if scale >= 1.0:
        return width, height
    if width >= height:
        w = max(1, math.ceil(width * scale - _FLOAT_SLACK))
        return w, pixels(height * w / width)
    h = max(1, math.ceil(height * scale - _FLOAT_SLACK))
    return pixels(width * h / height), h


def jpeg_shrink(source: tuple[int, int], needed: tuple[int, int]) -> int:
    """The JPEG decoder's own scale-down (1/2, 1/4, 1/8 in the DCT, far cheaper than decoding in
    full and resizing): the largest whose image still covers ``needed``, so the variants' resize
    is left at most a factor of 2, as sharp and Pillow's draft() choose. (libvips' thumbnail keeps
    at least 2x for its own resize, decoding up to 4x the pixels: a 24 MP JPEG for a 400 px
    variant at 1500 px instead of 750, and for a 2560 px one in full instead of at 3000 px.)"""
    for factor in (8, 4, 2):
        if -(-source[0] // factor) >= needed[0] and -(-source[1] // factor) >= needed[1]:
            return factor
    return 1


def check_source_size(width: int, height: int, limits: Limits) -> ImageTooLarge | None:
    if width * height > limits.max_source_pixels:
        return ImageTooLarge(
            f"source is {width}x{height} ({width * height} pixels); the limit is {limits.max_source_pixels} pixels"
        )
    return None


def check_output_size(variant_id: str, width: int, height: int, limits: Limits) -> OutputTooLarge | None:
    """The rule the engine applies after every step, in the engine's words."""
    if max(width, height) > limits.max_output_dimension or width * height > limits.max_output_pixels:
        return OutputTooLarge(
            f"variant '{variant_id}' would be {width}x{height}; the limits are {limits.max_output_dimension} px "
            f"a side and {limits.max_output_pixels} pixels"
        )
    return None


def compile_plan(
    spec: JobSpec,
    width: int,
    height: int,
    limits: Limits | None = None,
    *,
    source_format: str | None = None,
    frames: int = 1,
) -> Plan:
    """``width`` x ``height`` is the source as the client sees it (after EXIF auto-orientation).

    Raises the job's first problem (see ``plan_issues``) as its typed ``PipelineError``.
    """
    plan, issues = plan_issues(spec, width, height, limits, source_format=source_format, frames=frames)
    if issues:
        raise issues[0].error
    assert plan is not None  # no issues: every variant was sized
    return plan


def plan_issues(
    spec: JobSpec,
    width: int,
    height: int,
    limits: Limits | None = None,
    *,
    source_format: str | None = None,
    frames: int = 1,
) -> tuple[Plan | None, tuple[PlanIssue, ...]]:
    """The plan and every reason it would fail, in the order the engine meets them (the plan is
    None when a step is impossible for this size, e.g. a crop box outside the image)."""
    limits = limits or Limits()
    index = {v.id: i for i, v in enumerate(spec.pipeline)}
    order = topological_order(spec)
    roots = [v for v in order if v.from_ is None]
    scale = max(_needed_scale(v, width, height) for v in roots)
    decode = decode_size(width, height, scale)
    shrink = jpeg_shrink((width, height), decode) if source_format == "jpeg" else 1
    # held in memory when several read it, when a step reads out of order, or when the source is
    # described (pipeline.info reads it besides the variants)
    held = len(roots) > 1 or any(s.random_access for v in roots for s in v.steps) or spec.info is not None
    if shrink > 1 and not held:
        # one variant streams from the decoder: its resize goes straight from the DCT-scaled image.
        # (A decode held in memory for several variants is reduced to `decode` once first, so
        # each of them resizes from the smallest image that serves them all.)
        decode = (-(-width // shrink), -(-height // shrink))  # libjpeg rounds its scaled size up
    issues: list[PlanIssue] = []
    too_big = check_source_size(width, height, limits)
    if too_big is not None:
        issues.append(PlanIssue("$.source", too_big))
    animated = _animated_variants(spec, order, source_format) if frames > 1 else set()
    decoded_frames = frames if animated else 1
    if animated and too_big is None and width * height * frames > limits.max_source_pixels:
        issues.append(PlanIssue("$.source", ImageTooLarge(
            f"source has {frames} frames of {width}x{height} ({width * height * frames} pixels in all, decoded to keep "
            f"the animation); the limit is {limits.max_source_pixels} pixels"
        )))  # fmt: skip

    children: dict[str, int] = {}
    first_with: dict[tuple[str | None, bytes, bool], str] = {}
    twin_of: dict[str, str] = {}
    for v in order:
        if v.from_ is not None:
            children[v.from_] = children.get(v.from_, 0) + 1
        if v.steps:
            key = (v.from_, msgspec.json.encode(v.steps), v.id in animated)
            if key in first_with:
                twin_of[v.id] = first_with[key]
                children[first_with[key]] = children.get(first_with[key], 0) + 1
            else:
                first_with[key] = v.id

    sizes: dict[str | None, tuple[int, int]] = {None: decode}
    # A shrunk decode stands for the full-resolution source: resizes size their output from it
    # (as sharp and libvips' thumbnail do), so outputs do not depend on the decode's rounding.
    logical = (width, height) if decode != (width, height) else None
    nodes = []
    for v in order:
        at = f"$.pipeline[{index[v.id]}]"
        followed = _follow(v, at, sizes[v.from_], limits, issues, logical=logical if v.from_ is None else None)
        if followed is None:
            return None, tuple(issues)
        size, work = followed
        assert size is not None  # from a known size, every step's output size is known
        w, h = size
        sizes[v.id] = (w, h)
        fmt = output_format(v, source_format)
        encoding = _encode_cost(v, fmt, (w, h))
        twin = twin_of.get(v.id)
        materialize = children.get(v.id, 0) > 0
        kept = frames if v.id in animated else 1  # an animation's steps and encoder run once per frame
        nodes.append(
            PlanNode(v, v.from_, materialize, (w, h), fmt, 0.0 if twin else work * kept, encoding * kept,
                     pixels_of=twin, frames=kept)
        )  # fmt: skip
    plan = Plan(
        source_size=(width, height),
        decode_size=decode,
        materialize_source=held,
        nodes=tuple(nodes),
        decode_cost=decode_cost((width, height), decode) * decoded_frames,
        jpeg_shrink=shrink,
        frames=decoded_frames,
        keep_profile=any("icc" in kept_metadata(v) for v in spec.pipeline),
    )
    costs = [(index[n.variant.id], n) for n in plan.nodes]
    issues.extend(_budget_issues(costs, plan.cost, limits, certain=False))
    return plan, tuple(issues)


def _animated_variants(spec: JobSpec, order: list[Variant], source_format: str | None) -> set[str]:
    """The variants that keep an animated source's frames: `animated` (the default) in a format
    that can hold them, and every variant they are built from (a `from` chain is animated down to
    the variants that keep it; a flattened child takes its parent's first frame)."""
    keep = {v.id for v in order if v.animated and _animates(output_format(v, source_format))}
    by_id = {v.id: v for v in order}
    for v in list(keep):
        parent = by_id[v].from_
        while parent is not None and parent not in keep:
            keep.add(parent)
            parent = by_id[parent].from_
    return keep


def _animates(fmt: str | None) -> bool:
    return fmt is not None and FORMATS[fmt].animation


def spec_issues(spec: JobSpec, limits: Limits | None = None) -> tuple[PlanIssue, ...]:
    """What fails for every source, known before one is uploaded (``POST /v1/jobs``).

    Sizes are followed only from a step that fixes them whatever its input (a resize to an exact
    box) and through ``from``; a variant's cost counts just that part, so it is the least the
    variant can cost, and only a spec over budget at that floor is refused.
    """
    limits = limits or Limits()
    index = {v.id: i for i, v in enumerate(spec.pipeline)}
    issues: list[PlanIssue] = []
    known: dict[str | None, tuple[int, int] | None] = {None: None}
    floors: list[tuple[int, PlanNode]] = []
    for v in topological_order(spec):
        followed = _follow(v, f"$.pipeline[{index[v.id]}]", known[v.from_], limits, issues)
        if followed is None:
            return tuple(issues)
        size, work = followed
        known[v.id] = size
        if size is not None:
            fmt = output_format(v, None)
            floors.append((index[v.id], PlanNode(v, v.from_, False, size, fmt, work, _encode_cost(v, fmt, size))))
    issues.extend(_budget_issues(floors, sum(n.cost for _, n in floors), limits, certain=True))
    return tuple(issues)


def _follow(
    variant: Variant,
    at: str,
    size: tuple[int, int] | None,
    limits: Limits,
    issues: list[PlanIssue],
    *,
    logical: tuple[int, int] | None = None,
) -> tuple[tuple[int, int] | None, float] | None:
    """Walk ``variant``'s steps from ``size`` (None: unknown until a step fixes it, see
    ``spec_issues``): its final size and the cost of its steps, recording each limit it breaks in
    ``issues``. None when a step is impossible at its size (recorded too). ``logical``: the
    full-resolution size a shrunk decode stands for, which the first resize sizes its output
    from (``pipeline.ops.resize``); the steps before it are scale-free."""
    work = 0.0
    flagged = False
    for j, step in enumerate(variant.steps):
        if size is None:
            size = step.fixed_size()
            if size is None:
                continue
            work += step.cost(size, size)  # the input is unknown: charge as if it were this size
        else:
            try:
                sized_from, logical = through_logical(step, logical)
                after = step.output_size(*(sized_from or size))
            except PipelineError as exc:
                issues.append(PlanIssue(f"{at}.steps[{j}]", exc))
                return None
            work += step.cost(size, after)
            size = after
        too_large = None if flagged else check_output_size(variant.id, *size, limits)
        if too_large is not None:  # the engine stops this variant at its first oversized step
            issues.append(PlanIssue(f"{at}.steps[{j}]", too_large))
            flagged = True
    return size, work


def through_logical(
    step: Step, logical: tuple[int, int] | None
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """One step of a root variant that starts from a shrunk decode standing for the ``logical``
    (full-resolution) size: what the step sizes its output from (the logical size for the first
    resize, as sharp and libvips' thumbnail do; None: the image's own size), and the logical size
    after it (None once the resize has fixed the real size). The planner and the engine both walk
    steps through this, so predicted and produced sizes agree."""
    if logical is None:
        return None, None
    if isinstance(step, Resize):
        return logical, None
    return None, step.output_size(*logical)


def _encode_cost(variant: Variant, fmt: str | None, size: tuple[int, int]) -> float:
    if fmt is not None:
        return encode_cost(variant, fmt, size)
    # `auto` before the source is known: the cheapest format it may become, so a refusal is never
    # the estimate's guess.
    return min(encode_cost(variant, f, size) for f in auto_formats(lossy=variant.max_bytes is not None))


def _budget_issues(
    costs: list[tuple[int, PlanNode]], total: float, limits: Limits, *, certain: bool
) -> list[PlanIssue]:
    """Name the variants that break the budget: each one over it alone, or else the costliest."""
    budget = limits.max_job_cost
    if total <= budget or not costs:
        return []
    named = [c for c in costs if c[1].cost > budget] or [max(costs, key=lambda c: c[1].cost)]
    estimate = "at least" if certain else "about"
    issues = []
    for i, node in sorted(named, key=lambda c: c[0]):
        w, h = node.predicted_size
        what = f"encoding {w}x{h} as {_encoder(node)}" if node.encode_cost >= node.steps_cost else "its steps"
        issues.append(
            PlanIssue(
                f"$.pipeline[{i}]",
                OverBudget(
                    f"variant '{node.variant.id}' would cost {estimate} {node.cost:,.0f} units (~CPU-ms), mostly "
                    f"{what}; the job's {total:,.0f} exceed its budget of {budget:,}"
                ),
            )
        )
    return issues


def _encoder(node: PlanNode) -> str:
    if node.format is None:
        return "auto"
    effort = effective_effort(node.variant, node.format)
    return node.format if effort is None else f"{node.format} at effort {effort}"
