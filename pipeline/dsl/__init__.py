"""The job-spec DSL: strict msgspec structs, decoding with field paths, limits. No libvips here."""

from pipeline.dsl.decode import asset_keys, asset_references, decode_job_spec, encode_job_spec, topological_order
from pipeline.dsl.job import SPEC_VERSION, ImageSource, JobSpec
from pipeline.dsl.limits import Limits
from pipeline.dsl.steps import STEP_TYPES, Step
from pipeline.dsl.variant import Variant

__all__ = [
    "SPEC_VERSION",
    "STEP_TYPES",
    "ImageSource",
    "JobSpec",
    "Limits",
    "Step",
    "Variant",
    "asset_keys",
    "asset_references",
    "decode_job_spec",
    "encode_job_spec",
    "topological_order",
]
