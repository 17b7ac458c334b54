"""Import direction is a design rule; these tests make it a failing build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("pipeline", "infra", "control_plane", "data_plane", "cli")


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_imports_itself_through_others() -> None:
    """import-linter has no contract for this: a circle, even one closed only by an import for
    the type checker, means neither module can be understood (or moved) without the other."""
    graph = grimp.build_graph(*FIRST_PARTY, cache_dir=None)
    circles: dict[frozenset[str], str] = {}
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                circles.setdefault(frozenset(back), " -> ".join((importer, *back)))
    assert not circles, "import circles:\n" + "\n".join(sorted(circles.values()))


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
