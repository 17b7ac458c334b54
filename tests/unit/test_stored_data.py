"""Output key templates render where they say and stay under outputs/; a template diff tells
values of different JSON types apart and locates changes inside lists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from control_plane.templates.diff import diff_versions
from infra.objects import output_key
from infra.output_keys import check_output_key_template
from infra.repo import TemplateVersion

CLIENT, JOB = uuid.UUID(int=1), uuid.UUID(int=2)


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("{client}/{job}/{variant}.{ext}", f"outputs/{CLIENT}/{JOB}/thumb.jpg"),
        ("shop/{variant}/{job}.{ext}", f"outputs/shop/thumb/{JOB}.jpg"),
        ("{job}-{variant}", f"outputs/{JOB}-thumb"),
        ("a.b_c-d/{job}/{variant}.{ext}", f"outputs/a.b_c-d/{JOB}/thumb.jpg"),
    ],
)
def test_a_template_renders_under_outputs(template: str, key: str) -> None:
    assert check_output_key_template(template) == template
    assert output_key(CLIENT, JOB, "thumb", "jpeg", template) == key


def _version(n: int, spec: dict, parameters: dict | None = None) -> TemplateVersion:
    return TemplateVersion("t", n, spec, parameters or {}, datetime(2026, 1, 1, tzinfo=UTC))


def test_a_diff_tells_types_apart_and_walks_lists() -> None:
    old = _version(1, {"a": 1, "b": True, "c": [1, 2, 3], "d": {"x": 1}})
    new = _version(2, {"a": 1.0, "b": 1, "c": [1, 5], "d": [1]})
    changes = [(c.op, c.path, c.before, c.after) for c in diff_versions("t", old, new).changes]
    assert changes == [
        ("replace", "$.spec.a", 1, 1.0),
        ("replace", "$.spec.b", True, 1),
        ("replace", "$.spec.c[1]", 2, 5),
        ("remove", "$.spec.c[2]", 3, None),
        ("replace", "$.spec.d", {"x": 1}, [1]),
    ]
    assert diff_versions("t", old, old).changes == []
