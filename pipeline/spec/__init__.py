"""The job-spec DSL: strict msgspec structs, decoding with field paths, limits. No libvips here."""

from pipeline.spec.decode import asset_keys, decode_job_spec, encode_job_spec, topological_order
from pipeline.spec.job import SPEC_VERSION, JobSpec
from pipeline.spec.limits import Limits
from pipeline.spec.steps import STEP_TYPES, Step
from pipeline.spec.variant import Variant

__all__ = [
    "SPEC_VERSION",
    "STEP_TYPES",
    "JobSpec",
    "Limits",
    "Step",
    "Variant",
    "asset_keys",
    "decode_job_spec",
    "encode_job_spec",
    "topological_order",
]
