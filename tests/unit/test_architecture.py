"""Import direction is a design rule; these tests make it a failing build."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
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


def test_types_check() -> None:
    """mypy over the packages ``[tool.mypy]`` lists, with its settings; no mypy is a failure too
    (it is in the dev extra). Its cache is ``.mypy_cache`` (ignored by git), so reruns are quick."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout, result.stdout


def test_every_type_ignore_says_why() -> None:
    # in what mypy checks; mypy itself requires the error code (ignore-without-code)
    checked = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    silenced = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
    bare = []
    for path in sorted(p for folder in checked for p in (ROOT / folder).rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = silenced.search(line)
            if found and not re.match(r"\[[a-z-]+(, *[a-z-]+)*\]  # \S", found["rest"]):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "every `# type: ignore[code]` ends with `  # why`:\n" + "\n".join(bare)
