"""The published JSON Schema (schemas/job-spec.v1.json) against the validator: for every bounded
number, string and list the schema names, values on and just past each bound are accepted by the
schema exactly when ``decode_job_spec`` (default Limits) accepts them (issue 23)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.dsl import Limits, decode_job_spec
from pipeline.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "job-spec.v1.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
DEFS = SCHEMA["$defs"]

# The least each op needs to be valid alone (its cross-field rules), on which one field is varied.
STEP_BASE: dict[str, dict[str, Any]] = {
    "resize": {"width": 10},
    "crop": {"width": 10, "height": 10},
    "rotate": {"angle": 90},
    "flip": {},
    "flop": {},
    "blur": {"sigma": 1},
    "sharpen": {},
    "grayscale": {},
    "modulate": {},
    "pad": {"top": 1},
    "watermark": {"text": "x"},
}
# Fields whose bound depends on another field (checked by __post_init__ against the format, or a
# fraction against the other end): the schema cannot say it, so their boundaries are tried with
# the companion value that lets the field's own bound decide.
CONTEXT: dict[tuple[str, str], dict[str, Any]] = {
    ("watermark", "width"): {"image": "logo.png", "text": None},
    ("watermark", "font_size"): {},
    ("pad", "top"): {"right": 1},
    ("crop", "left"): {"top": 0},  # placed by both or neither
    ("crop", "top"): {"left": 0},
}


def _bounded(prop: dict) -> dict | None:
    for option in prop.get("anyOf", [prop]):
        if any(k in option for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxLength",
                                       "minLength", "maxItems", "minItems")):  # fmt: skip
            return option
    return None


def _probes(bound: dict) -> list[Any]:
    kind = bound.get("type")
    values: list[Any] = []
    if kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.001
        for key, sign in (("minimum", -1), ("maximum", 1)):
            if key in bound:
                values += [bound[key], bound[key] + sign * step]
        for key, sign in (("exclusiveMinimum", 1), ("exclusiveMaximum", -1)):
            if key in bound:
                values += [bound[key], bound[key] + sign * step]
    elif kind == "string" and "pattern" not in bound:
        for key, delta in (("minLength", -1), ("maxLength", 1)):
            if key in bound and bound[key] + delta >= 0:
                values += ["x" * bound[key], "x" * (bound[key] + delta)]
    elif kind == "array":
        item = bound.get("items", {})
        sample = item.get("enum", ["blurhash"])[0] if "enum" in item else None
        for key, delta in (("minItems", -1), ("maxItems", 1)):
            if key in bound and sample is not None and bound[key] + delta >= 0:
                values += [[sample] * bound[key], [sample] * (bound[key] + delta)]
    return values


def _cases() -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = []
    for name, base_step in STEP_BASE.items():
        title = name.capitalize() if name != "grayscale" else "Grayscale"
        for field, prop in DEFS[title]["properties"].items():
            if (bound := _bounded(prop)) is None:
                continue
            for value in _probes(bound):
                step = {"op": name, **base_step, **CONTEXT.get((name, field), {}), field: value}
                step = {k: v for k, v in step.items() if v is not None}
                doc = {"version": 1, "pipeline": [{"id": "a", "steps": [step]}]}
                cases.append((f"{name}.{field}={str(value)[:12]}", doc))
    for field, prop in DEFS["Variant"]["properties"].items():
        if field == "steps" or (bound := _bounded(prop)) is None:
            continue
        for value in _probes(bound):
            cases.append(
                (f"variant.{field}={str(value)[:12]}", {"version": 1, "pipeline": [{"id": "a", field: value}]})
            )
    # counts: variants per job, steps per variant, metadata members
    for n in (Limits().max_variants, Limits().max_variants + 1):
        cases.append((f"{n} variants", {"version": 1, "pipeline": [{"id": f"v{i}"} for i in range(n)]}))
    for n in (Limits().max_steps, Limits().max_steps + 1):
        cases.append((f"{n} steps", {"version": 1, "pipeline": [{"id": "a", "steps": [{"op": "flip"}] * n}]}))
    for n in (32, 33):
        cases.append(
            (
                f"{n} metadata keys",
                {"version": 1, "pipeline": [{"id": "a"}], "metadata": {f"k{i}": i for i in range(n)}},
            )
        )
    for n in (64, 65):
        cases.append((f"metadata key of {n}", {"version": 1, "pipeline": [{"id": "a"}], "metadata": {"k" * n: 1}}))
    for n in (1024, 1025):
        cases.append((f"metadata value of {n}", {"version": 1, "pipeline": [{"id": "a"}], "metadata": {"k": "v" * n}}))
    info = DEFS["InfoRequest"]["properties"]["placeholders"]
    for value in _probes(info):
        cases.append(
            (f"placeholders x{len(value)}", {"version": 1, "pipeline": [{"id": "a"}], "info": {"placeholders": value}})
        )
    return cases


def _validator_accepts(doc: dict) -> bool:
    try:
        decode_job_spec(doc, Limits())
    except SpecError:
        return False
    return True


@pytest.mark.parametrize(("what", "doc"), _cases(), ids=[c[0] for c in _cases()])
def test_the_schema_accepts_exactly_what_the_validator_accepts(what: str, doc: dict) -> None:
    assert VALIDATOR.is_valid(doc) == _validator_accepts(doc), (what, [e.message for e in VALIDATOR.iter_errors(doc)])
