"""Turn client bytes into a validated ``JobSpec``, or a ``SpecError`` naming every bad field path.

Three passes, each reporting JSONPath-like locations:
1. syntax and shape (msgspec, strict structs, per-field bounds),
2. the compact single-step form rewritten into the full form (errors mapped back to its paths),
3. whole-job rules: deployment limits, unique ids, ``from`` references forming a DAG.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from pipeline.dsl.job import JobSpec, MetadataKey, MetadataValue
from pipeline.dsl.limits import Limits
from pipeline.dsl.steps import FocalPoint, Step, StepBase, Watermark, is_smart
from pipeline.dsl.types import PATTERN_RULES
from pipeline.dsl.variant import Variant
from pipeline.errors import FieldError, SpecError, member_path

__all__ = [
    "asset_keys",
    "asset_references",
    "check_metadata",
    "decode_job_spec",
    "encode_job_spec",
    "field_error",
    "topological_order",
]

_VARIANT_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(Variant)) - {"steps"}
_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_COMPACT_STEP = re.compile(r"^(\$\.pipeline\[\d+\])\.steps\[0\](.*)$")
_TYPE_NAME = re.compile(r"(Expected|got) `([^`]*)`")
_REGEX = re.compile(r"^Expected str matching regex (.*)$", re.S)
_RULES = {repr(pattern): words for pattern, words in PATTERN_RULES.items()}  # as msgspec quotes it


def decode_job_spec(data: bytes | str | Any, limits: Limits | None = None) -> JobSpec:
    """Validate a spec given as JSON bytes/str or as already-decoded JSON values."""
    limits = limits or Limits()
    if isinstance(data, bytes | bytearray | memoryview | str):
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise SpecError.at("$", f"not valid JSON: {exc}") from None
        except UnicodeDecodeError:  # msgspec reads bytes as UTF-8 and says so with this
            raise SpecError.at("$", "not valid UTF-8") from None
    else:
        raw = data
    check_metadata(raw)
    raw, compact = _expand_compact(raw)
    try:
        spec = msgspec.convert(raw, JobSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(_every_field_error(raw, str(exc), compact)) from None
    errors = _job_rules(spec, limits, compact)
    if errors:
        raise SpecError(errors)
    return spec


def encode_job_spec(spec: JobSpec) -> bytes:
    """The normalised spec: full form, every default written out."""
    return msgspec.json.encode(spec)


def topological_order(spec: JobSpec) -> list[Variant]:
    """Variants ordered so every ``from`` parent precedes its children (spec must be validated)."""
    by_id = {v.id: v for v in spec.pipeline}
    done: dict[str, None] = {}

    def visit(v: Variant) -> None:
        if v.id in done:
            return
        if v.from_ is not None:
            visit(by_id[v.from_])
        done[v.id] = None

    for v in spec.pipeline:
        visit(v)
    return [by_id[i] for i in done]


def check_metadata(raw: Any) -> None:
    """msgspec reports a bad dict value at ``$.metadata[...]`` and a bad key at ``$``; name the
    key instead (every bad one)."""
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    if not isinstance(metadata, dict):
        return
    errors = []
    for key, value in metadata.items():
        path = member_path("$.metadata", str(key))
        if not isinstance(value, str | int | float | bool | None):
            errors.append(FieldError(path, f"Expected str | int | float | bool | null, got {type(value).__name__}"))
        for kind, what in ((MetadataKey, key), (MetadataValue, value)):
            try:
                msgspec.convert(what, kind)
            except msgspec.ValidationError as exc:
                message = _field_error(str(exc), frozenset()).message
                errors.append(FieldError(path, f"the key: {message}" if kind is MetadataKey else message))
                break
    if errors:
        raise SpecError(errors)


def _expand_compact(raw: Any) -> tuple[Any, frozenset[int]]:
    """Rewrite ``{"id", "action": op, ...op fields, ...output fields}`` into ``{"id", "steps": [op]}``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("pipeline"), list):
        return raw, frozenset()
    compact: set[int] = set()
    items = []
    for i, item in enumerate(raw["pipeline"]):
        if isinstance(item, dict) and "action" in item:
            if "steps" in item:
                raise SpecError.at(f"$.pipeline[{i}]", "use either `action` (compact form) or `steps`, not both")
            step = {k: v for k, v in item.items() if k not in _VARIANT_FIELDS and k != "action"}
            step = {"op": item["action"], **step}
            item = {k: v for k, v in item.items() if k in _VARIANT_FIELDS}  # noqa: PLW2901
            item["steps"] = [step]
            compact.add(i)
        items.append(item)
    return {**raw, "pipeline": items}, frozenset(compact)


def _every_field_error(raw: Any, first: str, compact: frozenset[int]) -> list[FieldError]:
    """msgspec stops at the first problem; a client fixing a spec wants all of them. Each
    variant (without its steps) and each step is converted on its own, so every one that is
    wrong reports its first problem, in document order, after the one msgspec found first."""
    found = [_field_error(first, compact)]

    def check(value: Any, kind: Any, at: str) -> None:
        try:
            msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            error = _field_error(str(exc), frozenset())
            path = _compact_path(at + error.path[1:], compact) if compact else at + error.path[1:]
            if all(path != seen.path for seen in found):
                found.append(FieldError(path, error.message))

    pipeline = raw.get("pipeline") if isinstance(raw, dict) else None
    for i, item in enumerate(pipeline if isinstance(pipeline, list) else ()):
        steps = item.get("steps") if isinstance(item, dict) else None
        if isinstance(steps, list):
            check({**item, "steps": []}, Variant, f"$.pipeline[{i}]")
            for j, step in enumerate(steps):
                check(step, Step, f"$.pipeline[{i}].steps[{j}]")
        else:
            check(item, Variant, f"$.pipeline[{i}]")
    return found


def field_error(exc: msgspec.ValidationError, at: str = "$") -> FieldError:
    """msgspec's error as a ``FieldError`` under ``at``, a pattern's rule said in words: for the
    service's own request shapes that carry the DSL's types."""
    error = _field_error(str(exc), frozenset())
    return FieldError(at + error.path[1:], error.message)


def _field_error(text: str, compact: frozenset[int]) -> FieldError:
    m = _MSGSPEC_AT.match(text)
    assert m is not None  # the pattern matches any string
    message, path = _TYPE_NAME.sub(r"\1 \2", m.group("msg")).replace("`", "'"), m.group("path") or "$"
    if (rule := _REGEX.match(message)) and (words := _RULES.get(rule.group(1))):
        message = words
    if compact:
        path = _compact_path(path, compact)
    return FieldError(path, message)


def _compact_path(path: str, compact: frozenset[int]) -> str:
    m = _COMPACT_STEP.match(path)
    if m is None or int(m.group(1)[len("$.pipeline[") : -1]) not in compact:
        return path
    rest = ".action" if m.group(2) == ".op" else m.group(2)
    return m.group(1) + rest


def _job_rules(spec: JobSpec, limits: Limits, compact: frozenset[int]) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(spec.pipeline) > limits.max_variants:
        errors.append(FieldError("$.pipeline", f"at most {limits.max_variants} variants per job"))
    if spec.metadata is not None and len(msgspec.json.encode(spec.metadata)) > 4096:
        errors.append(FieldError("$.metadata", "at most 4096 bytes of JSON"))

    index: dict[str, int] = {}
    for i, v in enumerate(spec.pipeline):
        if v.id in index:
            errors.append(FieldError(f"$.pipeline[{i}].id", f"duplicate id '{v.id}' (also $.pipeline[{index[v.id]}])"))
        else:
            index[v.id] = i
        if len(v.steps) > limits.max_steps:
            errors.append(FieldError(f"$.pipeline[{i}].steps", f"at most {limits.max_steps} steps per variant"))
        for j, step in enumerate(v.steps):
            base = f"$.pipeline[{i}]" if i in compact else f"$.pipeline[{i}].steps[{j}]"
            errors.extend(_step_limits(step, base, limits))

    for i, v in enumerate(spec.pipeline):
        if v.from_ is None:
            continue
        if v.from_ not in index:
            errors.append(FieldError(f"$.pipeline[{i}].from", f"no variant has id '{v.from_}'"))
            continue
        cycle = _cycle_from(spec, v.id, index)
        if cycle:
            errors.append(FieldError(f"$.pipeline[{i}].from", "cycle: " + " -> ".join(cycle)))
    errors.extend(_focal_after_smart(spec, index, compact))
    return errors


def _focal_after_smart(spec: JobSpec, index: dict[str, int], compact: frozenset[int]) -> list[FieldError]:
    """A focal point is given against the source; after a smart crop (which chooses its offset
    while running) nobody knows where that point went."""
    errors = []
    for i, v in enumerate(spec.pipeline):
        smart, parent, seen = False, v.from_, {v.id}
        while parent in index and parent not in seen:  # the chain above (cycles are reported apart)
            seen.add(parent)
            above = spec.pipeline[index[parent]]
            smart = smart or any(is_smart(getattr(s, "gravity", None)) for s in above.steps)
            parent = above.from_
        for j, step in enumerate(v.steps):
            gravity = getattr(step, "gravity", None)
            if isinstance(gravity, FocalPoint) and smart:
                at = f"$.pipeline[{i}]" if i in compact else f"$.pipeline[{i}].steps[{j}]"
                errors.append(FieldError(f"{at}.gravity", "a focal point cannot follow a smart crop in its chain"))
            smart = smart or is_smart(gravity)
    return errors


def _cycle_from(spec: JobSpec, start: str, index: dict[str, int]) -> list[str]:
    seen = [start]
    current = spec.pipeline[index[start]].from_
    while current is not None and current in index:
        if current == start:
            return [*seen, start]
        if current in seen:  # a cycle further up; reported at its own members
            return []
        seen.append(current)
        current = spec.pipeline[index[current]].from_
    return []


def _step_limits(step: StepBase, base: str, limits: Limits) -> list[FieldError]:
    cap = limits.max_output_dimension
    return [
        FieldError(f"{base}.{name}", f"must be <= {cap} on this deployment")
        for name in step.capped_fields
        if (getattr(step, name) or 0) > cap
    ]


def asset_references(spec: JobSpec) -> list[tuple[str, str]]:
    """``(path, key)`` of every asset a watermark step names, in spec order."""
    return [
        (f"$.pipeline[{i}].steps[{j}].image", s.image)
        for i, v in enumerate(spec.pipeline)
        for j, s in enumerate(v.steps)
        if isinstance(s, Watermark) and s.image
    ]


def asset_keys(spec: JobSpec) -> set[str]:
    """The asset keys the spec's watermark steps name: what a runner reads before the engine starts."""
    return {key for _, key in asset_references(spec)}
