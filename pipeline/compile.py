"""Compile a validated spec plus the source's size into an explicit execution plan.

The plan is a DAG in topological order. It decides three things before any pixel is read:
- the decode scale: shrink-on-load to the size the largest root variant needs, never more;
- which images are materialised in memory: a decoded source or a variant read by several
  consumers (otherwise libvips would re-run the decode once per consumer), and the source when a
  step needs random access (the decoder streams top to bottom);
- every variant's predicted output size (shown by the dry-run API).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.geometry import output_size, resize_plan
from pipeline.spec.decode import topological_order
from pipeline.spec.job import JobSpec
from pipeline.spec.steps import Crop, Flip, Flop, Grayscale, Modulate, Resize, Rotate, StepBase
from pipeline.spec.variant import Variant

__all__ = ["Plan", "PlanNode", "compile_plan", "decode_size", "needs_random_access"]


@dataclass(frozen=True, slots=True)
class PlanNode:
    variant: Variant
    parent: str | None  # None: the decoded source
    materialize: bool  # keep pre-encode pixels in memory for the variants built `from` this one
    predicted_size: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Plan:
    source_size: tuple[int, int]
    decode_size: tuple[int, int]
    materialize_source: bool
    nodes: tuple[PlanNode, ...]

    @property
    def decode_scale(self) -> float:
        return self.decode_size[0] / self.source_size[0]


def needs_random_access(step: StepBase) -> bool:
    if isinstance(step, Rotate | Flip):
        return True
    return isinstance(step, Crop | Resize) and step.gravity in ("attention", "entropy")


def _scale_free(step: StepBase) -> bool:
    if isinstance(step, Flip | Flop | Grayscale | Modulate):
        return True
    if isinstance(step, Rotate):
        return step.right_angle
    return isinstance(step, Crop) and step.ratio is not None


def _needed_scale(variant: Variant, width: int, height: int) -> float:
    """The smallest fraction of full resolution this root variant can start from unchanged."""
    w, h = width, height
    for step in variant.steps:
        if isinstance(step, Resize):
            plan = resize_plan(step, w, h)
            return min(1.0, max(plan.scaled[0] / w, plan.scaled[1] / h))
        if not _scale_free(step):
            return 1.0
        w, h = output_size(step, w, h)
    return 1.0


def decode_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size shrink-on-load produces: the longer side rounded up so no variant is starved,
    the other side following the aspect ratio the way libvips' thumbnail rounds it."""
    if scale >= 1.0:
        return width, height
    if width >= height:
        w = max(1, math.ceil(width * scale))
        return w, max(1, round(height * w / width))
    h = max(1, math.ceil(height * scale))
    return max(1, round(width * h / height)), h


def compile_plan(spec: JobSpec, width: int, height: int) -> Plan:
    """``width`` x ``height`` is the source as the client sees it (after EXIF auto-orientation)."""
    order = topological_order(spec)
    roots = [v for v in order if v.from_ is None]
    scale = max(_needed_scale(v, width, height) for v in roots)
    decode = decode_size(width, height, scale)

    children: dict[str, int] = {}
    for v in order:
        if v.from_ is not None:
            children[v.from_] = children.get(v.from_, 0) + 1

    sizes: dict[str | None, tuple[int, int]] = {None: decode}
    nodes = []
    random_from_source = False
    for v in order:
        w, h = sizes[v.from_]
        for step in v.steps:
            w, h = output_size(step, w, h)
        sizes[v.id] = (w, h)
        if v.from_ is None and any(needs_random_access(s) for s in v.steps):
            random_from_source = True
        nodes.append(PlanNode(v, v.from_, children.get(v.id, 0) > 0, (w, h)))
    return Plan(
        source_size=(width, height),
        decode_size=decode,
        materialize_source=len(roots) > 1 or random_from_source,
        nodes=tuple(nodes),
    )
