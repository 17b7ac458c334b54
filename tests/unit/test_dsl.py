"""Spec validation: every error class names its path; compact and full forms mean the same."""

from __future__ import annotations

import json

import msgspec
import pytest

from pipeline.dsl import JobSpec, Limits, decode_job_spec, encode_job_spec, topological_order
from pipeline.dsl.steps import Crop, Resize, Watermark
from pipeline.errors import SpecError


def job(*variants: dict, **extra: object) -> dict:
    return {"version": 1, "pipeline": list(variants), **extra}


def errors_of(doc: object, limits: Limits | None = None) -> list[str]:
    raw = doc if isinstance(doc, bytes | str) else json.dumps(doc)
    with pytest.raises(SpecError) as info:
        decode_job_spec(raw, limits)
    return [str(e) for e in info.value.errors]


COMPACT = {"id": "thumb_small", "action": "resize", "width": 150, "format": "webp", "quality": 80}


def test_compact_form_means_the_full_form() -> None:
    compact = decode_job_spec(json.dumps(job(COMPACT)))
    full = decode_job_spec(
        json.dumps(
            job({"id": "thumb_small", "steps": [{"op": "resize", "width": 150}], "format": "webp", "quality": 80})
        )
    )
    assert compact == full
    assert compact.pipeline[0].steps == [Resize(width=150)]


def test_normalised_spec_round_trips_with_defaults_written_out() -> None:
    spec = decode_job_spec(json.dumps(job(COMPACT, {"id": "b", "from": "thumb_small"})))
    normal = json.loads(encode_job_spec(spec))
    assert normal["pipeline"][0]["steps"][0] == {
        "op": "resize",
        "width": 150,
        "height": None,
        "fit": "cover",
        "gravity": "centre",
        "without_enlargement": False,
        "background": None,
    }
    assert normal["pipeline"][1]["from"] == "thumb_small"
    assert decode_job_spec(encode_job_spec(spec)) == spec


def test_struct_is_frozen() -> None:
    spec = decode_job_spec(json.dumps(job(COMPACT)))
    with pytest.raises(AttributeError):
        spec.version = 2  # type: ignore[misc]


INVALID = [
    # (case, document, expected "path: message" fragment)
    ("not json", b"{", "$: not valid JSON"),
    ("not an object", [1], "$: Expected object, got array"),
    ("missing version", {"pipeline": [{"id": "a"}]}, "$: Object missing required field 'version'"),
    ("unknown version", {"version": 2, "pipeline": [{"id": "a"}]}, "$.version: Invalid enum value 2"),
    ("empty pipeline", job(), "$.pipeline: Expected array of length >= 1"),
    ("unknown job field", job({"id": "a"}, colour="red"), "$: Object contains unknown field 'colour'"),
    ("unknown variant field", job({"id": "a", "size": 3}), "$.pipeline[0]: Object contains unknown field 'size'"),
    ("bad id", job({"id": "Has Spaces"}), "$.pipeline[0].id: Expected str matching regex"),
    ("long id", job({"id": "a" * 65}), "$.pipeline[0].id: Expected str of length <= 64"),
    (
        "unknown op",
        job({"id": "a", "steps": [{"op": "explode"}]}),
        "$.pipeline[0].steps[0].op: Invalid value 'explode'",
    ),
    (
        "missing op",
        job({"id": "a", "steps": [{"width": 3}]}),
        "$.pipeline[0].steps[0]: Object missing required field 'op'",
    ),
    (
        "unknown step field",
        job({"id": "a", "steps": [{"op": "blur", "sigma": 1, "radius": 2}]}),
        "$.pipeline[0].steps[0]: Object contains unknown field 'radius'",
    ),
    (
        "width below range",
        job({"id": "a"}, {"id": "b"}, {"id": "c", "steps": [{"op": "resize", "width": 0}]}),
        "$.pipeline[2].steps[0].width: Expected int >= 1",
    ),
    (
        "width above range",
        job({"id": "a", "steps": [{"op": "resize", "width": 16385}]}),
        "$.pipeline[0].steps[0].width: Expected int <= 16384",
    ),
    ("wrong type", job({"id": "a", "steps": [{"op": "resize", "width": "big"}]}), "Expected int | null, got str"),
    ("bool is not int", job({"id": "a", "steps": [{"op": "resize", "width": True}]}), "Expected int | null, got bool"),
    ("resize without size", job({"id": "a", "steps": [{"op": "resize"}]}), "$.pipeline[0].steps[0]: resize needs"),
    (
        "smart gravity without cover",
        job({"id": "a", "steps": [{"op": "resize", "width": 5, "height": 5, "fit": "inside", "gravity": "attention"}]}),
        "'gravity' only applies to fit 'cover'",
    ),
    (
        "background without contain",
        job({"id": "a", "steps": [{"op": "resize", "width": 5, "background": "#fff000"}]}),
        "'background' only applies to fit 'contain'",
    ),
    ("bad fit", job({"id": "a", "steps": [{"op": "resize", "width": 5, "fit": "squash"}]}), ".fit: Invalid enum value"),
    (
        "crop both forms",
        job({"id": "a", "steps": [{"op": "crop", "width": 5, "height": 5, "aspect_ratio": "1:1"}]}),
        "crop takes either 'aspect_ratio' or 'width'/'height'",
    ),
    ("crop half box", job({"id": "a", "steps": [{"op": "crop", "width": 5}]}), "crop needs both 'width' and 'height'"),
    (
        "crop left without top",
        job({"id": "a", "steps": [{"op": "crop", "width": 5, "height": 5, "left": 1}]}),
        "crop needs both 'left' and 'top'",
    ),
    (
        "crop gravity with offsets",
        job({"id": "a", "steps": [{"op": "crop", "width": 5, "height": 5, "left": 1, "top": 1, "gravity": "north"}]}),
        "'gravity' has no effect",
    ),
    (
        "bad ratio",
        job({"id": "a", "steps": [{"op": "crop", "aspect_ratio": "0:9"}]}),
        ".aspect_ratio: Expected str matching",
    ),
    ("rotate needs angle", job({"id": "a", "steps": [{"op": "rotate"}]}), "missing required field 'angle'"),
    (
        "bad colour",
        job({"id": "a", "steps": [{"op": "rotate", "angle": 5, "background": "red"}]}),
        ".background: Expected str",
    ),
    ("blur sigma zero", job({"id": "a", "steps": [{"op": "blur", "sigma": 0}]}), ".sigma: Expected float > 0"),
    (
        "modulate range",
        job({"id": "a", "steps": [{"op": "modulate", "brightness": 11}]}),
        ".brightness: Expected float <= 10",
    ),
    ("empty pad", job({"id": "a", "steps": [{"op": "pad"}]}), "pad needs at least one"),
    ("watermark neither", job({"id": "a", "steps": [{"op": "watermark"}]}), "exactly one of 'text' or 'image'"),
    (
        "watermark both",
        job({"id": "a", "steps": [{"op": "watermark", "text": "x", "image": "a.png"}]}),
        "exactly one of 'text' or 'image'",
    ),
    (
        "watermark traversal",
        job({"id": "a", "steps": [{"op": "watermark", "image": "a/../../etc/passwd"}]}),
        "$.pipeline[0].steps[0].image: Expected str matching regex",
    ),
    (
        "watermark font on image",
        job({"id": "a", "steps": [{"op": "watermark", "image": "a.png", "font_size": 20}]}),
        "only apply to a 'text' watermark",
    ),
    (
        "watermark control chars",
        job({"id": "a", "steps": [{"op": "watermark", "text": "a\x00b"}]}),
        "control characters",
    ),
    ("bad format", job({"id": "a", "format": "bmp"}), "$.pipeline[0].format: Invalid enum value 'bmp'"),
    ("heic output", job({"id": "a", "format": "heic"}), "$.pipeline[0].format: Invalid enum value 'heic'"),
    ("quality range", job({"id": "a", "format": "jpeg", "quality": 101}), "$.pipeline[0].quality: Expected int <= 100"),
    ("quality on png", job({"id": "a", "format": "png", "quality": 80}), "'quality' does not apply to png"),
    ("lossless jpeg", job({"id": "a", "format": "jpeg", "lossless": True}), "'lossless' applies to webp, avif and jxl"),
    ("lossless with quality", job({"id": "a", "format": "webp", "lossless": True, "quality": 5}), "no effect with"),
    ("progressive webp", job({"id": "a", "format": "webp", "progressive": True}), "'progressive' applies to jpeg"),
    ("effort on jpeg", job({"id": "a", "format": "jpeg", "effort": 3}), "'effort' does not apply to jpeg"),
    ("webp effort range", job({"id": "a", "format": "webp", "effort": 9}), "'effort' for webp must be between 0 and 6"),
    (
        "duplicate ids",
        job({"id": "a"}, {"id": "b"}, {"id": "a"}),
        "$.pipeline[2].id: duplicate id 'a' (also $.pipeline[0])",
    ),
    ("dangling from", job({"id": "a", "from": "ghost"}), "$.pipeline[0].from: no variant has id 'ghost'"),
    ("self cycle", job({"id": "a", "from": "a"}), "$.pipeline[0].from: cycle: a -> a"),
    (
        "cycle",
        job({"id": "a", "from": "c"}, {"id": "b", "from": "a"}, {"id": "c", "from": "b"}),
        "cycle: a -> c -> b -> a",
    ),
    ("webhook scheme", job({"id": "a"}, webhook_url="ftp://x.example"), "$.webhook_url: must be an http(s) URL"),
    # issue 23: PostgreSQL stores no NUL, so no string of a spec holds one; each names its field
    ("webhook NUL", job({"id": "a"}, webhook_url="https://x.example/\x00"), "$.webhook_url: must be an http(s) URL"),
    ("metadata value NUL", job({"id": "a"}, metadata={"k": "a\x00"}), "$.metadata.k: must not contain NUL"),
    ("metadata key NUL", job({"id": "a"}, metadata={"a\x00": 1}), '$.metadata["a\\u0000"]: the key: must not'),
    (
        "metadata value long",
        job({"id": "a"}, metadata={"k": "v" * 1025}),
        "$.metadata.k: Expected str of length <= 1024",
    ),
    ("source url NUL", job({"id": "a"}, source={"url": "https://x.example/\x00"}), "$.source.url: must be an http"),
    (
        "metadata type",
        job({"id": "a"}, metadata={"k": [1]}),
        "$.metadata.k: Expected str | int | float | bool | null, got list",
    ),
    (
        "metadata size",
        job({"id": "a"}, metadata={f"k{i}": "v" * 1000 for i in range(5)}),
        "$.metadata: at most 4096 bytes",
    ),
    ("compact with steps", job({"id": "a", "action": "blur", "sigma": 1, "steps": []}), "$.pipeline[0]: use either"),
    ("compact bad field", job({**COMPACT, "width": 0}), "$.pipeline[0].width: Expected int >= 1"),
    ("compact unknown op", job({**COMPACT, "action": "zoom"}), "$.pipeline[0].action: Invalid value 'zoom'"),
    ("compact unknown field", job({**COMPACT, "widht": 3}), "$.pipeline[0]: Object contains unknown field 'widht'"),
    ("compact rule", job({"id": "a", "action": "resize"}), "$.pipeline[0]: resize needs"),
]


@pytest.mark.parametrize(("doc", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_specs_name_the_path(doc: object, expected: str) -> None:
    errors = errors_of(doc)
    assert any(expected in e for e in errors), errors


def test_every_independent_error_is_reported_together() -> None:
    errors = errors_of(job({"id": "a", "from": "x"}, {"id": "a"}))
    assert errors == [
        "$.pipeline[1].id: duplicate id 'a' (also $.pipeline[0])",
        "$.pipeline[0].from: no variant has id 'x'",
    ]


@pytest.mark.parametrize(
    ("limits", "doc", "expected"),
    [
        (Limits(max_variants=2), job({"id": "a"}, {"id": "b"}, {"id": "c"}), "$.pipeline: at most 2 variants per job"),
        (
            Limits(max_steps=1),
            job({"id": "a", "steps": [{"op": "flip"}, {"op": "flop"}]}),
            "$.pipeline[0].steps: at most 1 steps per variant",
        ),
        (
            Limits(max_output_dimension=1000),
            job({"id": "a", "steps": [{"op": "flip"}, {"op": "resize", "width": 2000}]}),
            "$.pipeline[0].steps[1].width: must be <= 1000 on this deployment",
        ),
        (
            Limits(max_output_dimension=1000),
            job({"id": "a", "action": "pad", "left": 1001}),
            "$.pipeline[0].left: must be <= 1000 on this deployment",
        ),
    ],
)
def test_deployment_limits(limits: Limits, doc: dict, expected: str) -> None:
    assert expected in errors_of(doc, limits)


def test_defaults_allow_32_variants_and_16_steps() -> None:
    steps = [{"op": "flip"}] * 16
    spec = decode_job_spec(json.dumps(job(*({"id": f"v{i}", "steps": steps} for i in range(32)))))
    assert len(spec.pipeline) == 32
    assert "at most 32 variants" in errors_of(job(*({"id": f"v{i}"} for i in range(33))))[0]
    assert "at most 16 steps" in errors_of(job({"id": "a", "steps": [*steps, {"op": "flop"}]}))[0]


def test_every_op_accepts_its_documented_example() -> None:
    steps = [
        {"op": "resize", "width": 100, "height": 50, "fit": "contain", "background": "#ffffff80"},
        {"op": "crop", "left": 0, "top": 0, "width": 10, "height": 10},
        {"op": "crop", "aspect_ratio": "16:9", "gravity": "entropy"},
        {"op": "rotate", "angle": -12.5, "background": "#00000000"},
        {"op": "flip"},
        {"op": "flop"},
        {"op": "blur", "sigma": 2},
        {"op": "sharpen", "sigma": 1, "flat": 1, "jagged": 2},
        {"op": "grayscale"},
        {"op": "modulate", "brightness": 1.1, "saturation": 0.5, "hue": 90},
        {"op": "pad", "top": 4, "background": "#ff0000"},
        {"op": "watermark", "text": "hi", "font": "serif", "font_size": 20, "color": "#ff00ff", "gravity": "north"},
        {"op": "watermark", "image": "brand/logo.png", "width": 64, "opacity": 1, "margin": 0},
    ]
    spec = decode_job_spec(json.dumps(job({"id": "a", "steps": steps[:13]})), Limits(max_steps=16))
    assert [s.__struct_config__.tag for s in spec.pipeline[0].steps] == [s["op"] for s in steps]
    assert isinstance(spec.pipeline[0].steps[2], Crop) and spec.pipeline[0].steps[2].ratio == (16, 9)
    assert isinstance(spec.pipeline[0].steps[12], Watermark)


def test_topological_order_puts_parents_first() -> None:
    spec = decode_job_spec(
        json.dumps(job({"id": "c", "from": "b"}, {"id": "b", "from": "a"}, {"id": "a"}, {"id": "d"}))
    )
    assert [v.id for v in topological_order(spec)] == ["a", "b", "c", "d"]


def test_decode_accepts_already_parsed_json() -> None:
    assert isinstance(decode_job_spec(job(COMPACT)), JobSpec)


def test_spec_error_is_a_msgspec_free_public_type() -> None:
    with pytest.raises(SpecError) as info:
        decode_job_spec("[]")
    assert not isinstance(info.value, msgspec.ValidationError)
    assert info.value.code == "invalid_spec"


def test_every_invalid_variant_and_step_is_reported_at_once() -> None:
    raw = {
        "version": 1,
        "pipeline": [
            {"id": "a", "action": "resize", "width": 0, "format": "webp"},
            {"id": "b", "steps": [{"op": "blur", "sigma": -1}, {"op": "spin"}], "format": "png"},
            {"id": "ok", "action": "resize", "width": 10, "format": "jpeg"},
            {"id": "c", "action": "resize", "width": 10, "format": "bmp"},
        ],
    }
    with pytest.raises(SpecError) as err:
        decode_job_spec(raw)
    assert [e.path for e in err.value.errors] == [
        "$.pipeline[0].width",
        "$.pipeline[1].steps[0].sigma",
        "$.pipeline[1].steps[1].op",
        "$.pipeline[3].format",
    ]
