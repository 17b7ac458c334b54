"""The published JSON Schema, generated from the structs (``schemas/`` holds the committed copy).

msgspec describes the full form. The compact single-step form (``"action"`` plus the op's and
the output's fields on the variant) is described by structs built here from the same fields, so
both forms come from one source of truth.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from pipeline.dsl.job import JobSpec
from pipeline.dsl.limits import Limits
from pipeline.dsl.steps import STEP_TYPES, StepBase
from pipeline.dsl.variant import Variant

__all__ = ["SCHEMA_ID", "job_spec_components", "job_spec_schema", "schema_files"]

SCHEMA_ID = "https://pixelflow.dev/schemas/job-spec.v1.json"


def _compact_struct(step: type[StepBase]) -> type[msgspec.Struct]:
    fields = [f for f in msgspec.structs.fields(Variant) if f.name != "steps"] + list(msgspec.structs.fields(step))
    return msgspec.defstruct(
        f"Compact{step.__name__}",
        [(f.name, f.type, _field(f)) for f in fields],
        tag_field="action",
        tag=step.__struct_config__.tag,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
    )


def _field(f: msgspec.structs.FieldInfo) -> Any:
    if f.default_factory is not msgspec.NODEFAULT:
        return msgspec.field(default_factory=f.default_factory, name=f.encode_name)
    if f.default is msgspec.NODEFAULT:
        return msgspec.field(name=f.encode_name)
    return msgspec.field(default=f.default, name=f.encode_name)


def job_spec_components(ref_template: str = "#/$defs/{name}") -> tuple[dict[str, Any], dict[str, Any]]:
    """The job spec's top-level schema (a reference to ``JobSpec``) and its named definitions,
    with references written by ``ref_template``: ``$defs`` here, OpenAPI components in the API."""
    compact = tuple(_compact_struct(s) for s in STEP_TYPES)
    full_defs: dict[str, Any]
    (top,), full_defs = msgspec.json.schema_components([JobSpec], ref_template=ref_template)
    compact_union = Union[compact]  # type: ignore[valid-type]  # noqa: UP007 - a union built at run time from a tuple of types
    (_,), compact_defs = msgspec.json.schema_components([compact_union], ref_template=ref_template)
    defs = {**compact_defs, **full_defs}
    # A pipeline item is either a full Variant or one of the compact forms.
    job = defs["JobSpec"]
    job["properties"]["pipeline"]["items"] = {
        "anyOf": [{"$ref": ref_template.format(name=n)} for n in ("Variant", *(c.__name__ for c in compact))]
    }
    # The counts are deployment limits (Limits, PIXELFLOW_MAX_VARIANTS / _STEPS), not the structs'
    # own: the schema publishes the defaults the validator applies, so the two agree out of the box.
    defaults = Limits()
    job["properties"]["pipeline"]["maxItems"] = defaults.max_variants
    job["properties"]["pipeline"]["description"] += f" At most {defaults.max_variants} (PIXELFLOW_MAX_VARIANTS)."
    steps = defs["Variant"]["properties"]["steps"]
    steps["maxItems"] = defaults.max_steps
    steps["description"] += f" At most {defaults.max_steps} (PIXELFLOW_MAX_STEPS)."
    return top, defs


def job_spec_schema() -> dict[str, Any]:
    top, defs = job_spec_components()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "PixelFlow job spec",
        **top,
        "$defs": defs,
    }


def schema_files() -> dict[str, str]:
    """The committed contents of ``schemas/``, by file name."""
    import json

    return {"job-spec.v1.json": json.dumps(job_spec_schema(), indent=2, sort_keys=True) + "\n"}
