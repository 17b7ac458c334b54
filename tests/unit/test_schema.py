"""schemas/ is generated from the structs; it must not drift and must agree with the decoder."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pipeline.dsl import decode_job_spec
from pipeline.dsl.schema import job_spec_schema, schema_files
from pipeline.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_matches_the_structs() -> None:
    for name, text in schema_files().items():
        committed = (ROOT / "schemas" / name).read_text()
        assert committed == text, f"schemas/{name} is stale: run `pixelflow schema --write schemas`"


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(job_spec_schema())


EXAMPLES = [
    {
        "version": 1,
        "pipeline": [{"id": "thumb_small", "action": "resize", "width": 150, "format": "webp", "quality": 80}],
    },
    {"version": 1, "pipeline": [{"id": "a", "steps": [{"op": "blur", "sigma": 2}], "format": "png"}]},
    {"version": 1, "pipeline": [{"id": "a"}, {"id": "b", "from": "a", "action": "watermark", "text": "x"}]},
]
INVALID = [
    {"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 0}]},
    {"version": 1, "pipeline": [{"id": "a", "steps": [{"op": "nope"}]}]},
    {"version": 1, "pipeline": [{"id": "a", "extra": 1}]},
    {"version": 1, "pipeline": [{"id": "a", "action": "blur"}]},  # sigma is required
    {"pipeline": [{"id": "a"}]},
]


@pytest.mark.parametrize("doc", [*EXAMPLES, json.loads((ROOT / "examples" / "job.json").read_text())])
def test_schema_and_decoder_accept_the_examples(doc: dict) -> None:
    jsonschema.validate(doc, job_spec_schema())
    decode_job_spec(doc)


@pytest.mark.parametrize("doc", INVALID)
def test_schema_and_decoder_reject_the_same_shapes(doc: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, job_spec_schema())
    with pytest.raises(SpecError):
        decode_job_spec(doc)
