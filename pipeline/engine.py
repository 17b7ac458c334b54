"""Run a job: probe, plan, decode once, apply every variant's ops, encode.

Synchronous and CPU-bound; libvips releases the GIL while it computes, so callers run it in a
thread or process pool. Every failure surfaces as a ``PipelineError`` subclass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pyvips

from pipeline.animation import first_frame, frame_count, frame_size, is_animated, per_frame
from pipeline.compile import Plan, PlanNode, check_output_size, compile_plan, through_logical
from pipeline.details import SourceDetails
from pipeline.dsl.job import JobSpec
from pipeline.dsl.limits import Limits
from pipeline.dsl.steps import Step, is_smart
from pipeline.encode import Encoded, encode, resolve_format
from pipeline.errors import CorruptImage, DeadlineExceeded, InvalidOperation, PipelineError
from pipeline.geometry import IDENTITY, Affine
from pipeline.info import describe
from pipeline.load import SourceHeader, decode, drop_opaque_alpha, probe
from pipeline.ops import AssetResolver, OpContext, apply_step
from pipeline.vips import configure_vips, drop_cached_images, in_memory

__all__ = ["JobOutput", "VariantOutput", "process"]


@dataclass(frozen=True, slots=True)
class VariantOutput:
    id: str
    format: str
    content_type: str
    width: int
    height: int
    data: bytes
    quality: int | None = None  # a lossy encoder's quality (with `max_bytes`: the one chosen)
    frames: int = 1  # an animation's frames; 1 for a still image or an animation's first frame

    @property
    def bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class JobOutput:
    source: SourceHeader
    plan: Plan
    variants: tuple[VariantOutput, ...]
    details: SourceDetails | None = None  # the spec's `info`, when it asks


# Called after each variant is encoded (progress bars, uploads).
VariantHook = Callable[[VariantOutput], None]
# Wraps each stage for tracing: observe("pipeline.decode", {...}) returns a context manager. The
# engine stays free of any telemetry library; the caller decides what a stage becomes.
Observer = Callable[[str, dict[str, object]], AbstractContextManager[object]]


def _no_observer(name: str, attributes: dict[str, object]) -> AbstractContextManager[object]:
    return nullcontext()


class _Deadline:
    """The job's time, looked at between steps. The hard deadline is the parent's SIGKILL of the
    engine child (``pipeline.sandbox``): nothing here reaches into libvips' evaluation, since a
    callback from C into Python can outlive the wrapper that owns it (see ``_evaluate``)."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds

    @property
    def passed(self) -> bool:
        return time.monotonic() > self.at

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"processing took longer than {self.seconds:g} s")

    def check(self) -> None:
        if self.passed:
            raise self.exceeded()


def process(
    data: bytes,
    spec: JobSpec,
    *,
    limits: Limits | None = None,
    assets: AssetResolver | None = None,
    on_variant: VariantHook | None = None,
    observe: Observer = _no_observer,
    parallel: int | None = None,
) -> JobOutput:
    """``parallel``: encoder threads (default: libvips' thread count for this process)."""
    configure_vips()
    try:
        return _process(data, spec, limits, assets, on_variant, observe, parallel)
    finally:
        drop_cached_images()  # or the next job runs beside this one's pixels


def _process(
    data: bytes,
    spec: JobSpec,
    limits: Limits | None,
    assets: AssetResolver | None,
    on_variant: VariantHook | None,
    observe: Observer,
    parallel: int | None,
) -> JobOutput:
    limits = limits or Limits()
    deadline = _Deadline(limits.deadline_seconds)
    with observe("pipeline.probe", {"source.bytes": len(data)}):
        info = probe(data, limits, auto_orient=spec.auto_orient)
        plan = compile_plan(spec, info.width, info.height, limits, source_format=info.format, frames=info.pages)
    ctx = OpContext(limits=limits, assets=assets)

    held = _Held()
    with observe("pipeline.decode", {"source.format": info.format, "decode.width": plan.decode_size[0]}):
        source = decode(data, plan, auto_orient=spec.auto_orient)
        if plan.materialize_source:
            source = _evaluate(held.materialize, source, deadline=deadline, what="decoding the source")
            source = drop_opaque_alpha(source)
    details = None
    if (request := spec.info) is not None:
        with observe("pipeline.info", {}):
            details = _evaluate(
                lambda image: describe(
                    data, fmt=info.format, width=info.width, height=info.height, orientation=info.orientation,
                    frames=info.pages, source=image, request=request,
                ),
                source, deadline=deadline, what="describing the source",
            )  # fmt: skip
    images: dict[str | None, pyvips.Image] = {None: source}
    placements: dict[str | None, Affine | None] = {None: IDENTITY}  # the decode is the whole upright source
    # Encoders (libwebp, libjpeg, ...) are single-threaded and dominate a job's time, so with
    # spare libvips threads the variants are encoded concurrently while the main thread builds
    # the next variant. Workers run one libvips thread per job and stay sequential.
    workers = parallel if parallel is not None else pyvips.concurrency_get()
    pool = (
        ThreadPoolExecutor(workers, thread_name_prefix="pixelflow-encode")
        if workers > 1 and len(plan.nodes) > 1
        else None
    )
    pending: dict[str, tuple[str, pyvips.Image, Future[Encoded] | Encoded]] = {}
    try:
        for node in plan.work_order():
            variant = node.variant
            with observe("pipeline.variant", {"variant.id": variant.id, "variant.steps": len(variant.steps)}):
                if node.pixels_of is not None:  # the same parent and steps made these pixels already
                    image, placements[variant.id] = images[node.pixels_of], placements[node.pixels_of]
                else:
                    parent = node.parent
                    image, placements[variant.id] = _run_steps(
                        images[parent], placements[parent], node, plan, ctx, deadline
                    )
                what = f"variant '{variant.id}'"
                if node.materialize:
                    image = _evaluate(held.materialize, image, deadline=deadline, what=what)
                images[variant.id] = image
                fmt = resolve_format(variant, info.format)
                job = partial(
                    _evaluate, encode, image, variant, fmt, pixels=held.pixels(image), deadline=deadline, what=what
                )
                pending[variant.id] = (fmt, image, pool.submit(job) if pool else job())
        outputs = []
        for node in plan.nodes:  # the spec's order
            variant_id = node.variant.id
            fmt, image, result = pending[variant_id]
            encoded = result.result() if isinstance(result, Future) else result
            width, height = frame_size(image)
            out = VariantOutput(
                variant_id, fmt, encoded.content_type, width, height, encoded.data, encoded.quality, frame_count(image)
            )
            outputs.append(out)
            if on_variant is not None:
                on_variant(out)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return JobOutput(info, plan, tuple(outputs), details)


def _run_steps(
    image: pyvips.Image, placement: Affine | None, node: PlanNode, plan: Plan, ctx: OpContext, deadline: _Deadline
) -> tuple[pyvips.Image, Affine | None]:
    """The variant's steps, and where the source's points (focal gravities) lie in the result."""
    # a root starting from a shrunk decode: see OpContext.logical_size
    shrunk = node.parent is None and plan.decode_size != plan.source_size
    logical = plan.source_size if shrunk else None
    if node.frames == 1:
        image = first_frame(image)  # a variant that does not keep the animation
    for step in node.variant.steps:
        deadline.check()
        sized_from, logical = through_logical(step, logical)
        before = sized_from or (image.width, image.height)
        image = _apply(image, step, replace(ctx, logical_size=sized_from, placement=placement))
        _check_size(image, limits=ctx.limits, variant_id=node.variant.id)
        placement = step.carry(placement, before, (image.width, image.height))
    return image, placement


def _apply(image: pyvips.Image, step: Step, ctx: OpContext) -> pyvips.Image:
    try:
        if is_animated(image):
            # a smart gravity becomes a point of the first frame: read as such, not via the source
            frame_ctx = replace(ctx, placement=IDENTITY) if is_smart(getattr(step, "gravity", None)) else ctx
            return per_frame(image, step, lambda frame, s: apply_step(frame, s, frame_ctx))
        return apply_step(image, step, ctx)
    except PipelineError:
        raise
    except pyvips.Error as exc:
        op = getattr(step, "__struct_config__", None)
        name = op.tag if op is not None else type(step).__name__
        raise InvalidOperation(f"step '{name}' cannot be applied to this image", detail=str(exc)) from None


def _check_size(image: pyvips.Image, limits: Limits, variant_id: str) -> None:
    error = check_output_size(variant_id, *frame_size(image), limits)
    if error is not None:
        raise error


class _Held:
    """The job's images held in memory, each with its pixels as bytes (``in_memory``), so an
    encoder reading bytes takes them as they are. Keyed by the image object itself, which the
    map keeps alive for the job: an image derived from it has other pixels and no entry."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[pyvips.Image, bytes]] = {}

    def materialize(self, image: pyvips.Image) -> pyvips.Image:
        held, pixels = in_memory(image)
        if pixels is not None:
            self._by_id[id(held)] = (held, pixels)
        return held

    def pixels(self, image: pyvips.Image) -> bytes | None:
        entry = self._by_id.get(id(image))
        return entry[1] if entry is not None and entry[0] is image else None


def _evaluate(
    work: Callable[..., Any],
    image: pyvips.Image,
    *args: Any,
    deadline: _Deadline,
    what: str,
    **kwargs: Any,
) -> Any:
    """Compute pixels: the only place libvips does real work.

    No ``eval`` signal watches it: pyvips keeps a signal's cffi handle in one Python wrapper, and
    libvips' operation cache hands the same C image to an identical operation in another branch
    after that wrapper is gone, so the signal then called freed memory and aborted the process
    (tests/engine/test_engine_callbacks.py). Work is not started once the job's time is up."""
    deadline.check()
    try:
        return work(image, *args, **kwargs)
    except pyvips.Error as exc:
        # Pixels are computed lazily, so a corrupt or truncated source surfaces here.
        raise CorruptImage(f"the image data is corrupt or truncated ({what} failed)", detail=str(exc)) from None
