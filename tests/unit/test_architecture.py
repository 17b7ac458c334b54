"""Import direction is a design rule; these tests make it a failing build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_validating_a_spec_does_not_load_libvips() -> None:
    code = (
        "import sys, pipeline.dsl, pipeline.compile, pipeline.sniff, pipeline.dsl.schema;"
        'pipeline.dsl.decode_job_spec(b\'{"version":1,"pipeline":[{"id":"a","action":"flip"}]}\');'
        "pipeline.dsl.schema.job_spec_schema();"
        "print('pyvips' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_op_has_exactly_one_registered_implementation() -> None:
    from pipeline.dsl import STEP_TYPES
    from pipeline.ops import REGISTRY

    assert set(REGISTRY) == set(STEP_TYPES)
