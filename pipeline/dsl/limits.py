"""Deployment limits. Defaults are safe for a 2-core worker with 1 GiB of memory."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from pipeline.dsl.types import MAX_DIMENSION

__all__ = ["Limits"]

Positive = Annotated[int, Meta(ge=1)]


class Limits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_variants: Positive = 32
    max_steps: Positive = 16
    max_output_dimension: Annotated[int, Meta(ge=1, le=MAX_DIMENSION)] = MAX_DIMENSION
    max_output_pixels: Positive = 100_000_000
    max_source_pixels: Positive = 100_000_000
    max_source_bytes: Positive = 50 * 1024 * 1024
    max_frames: Positive = 256
    deadline_seconds: Annotated[float, Meta(gt=0)] = 60.0
    # The planner's estimate of a job's work, in cost units (about one CPU-millisecond on the
    # reference core; see pipeline/cost.py). Two minutes of a core: the estimate leans high
    # (calibrated on grainy images) and the deadline stops whatever it misjudges.
    max_job_cost: Positive = 120_000
