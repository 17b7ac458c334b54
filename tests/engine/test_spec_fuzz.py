"""Random valid specs over every input format, through the engine child: each job succeeds or fails
for its input, and no child dies (devstack/specgen.py makes the specs, bench/fuzz.py runs the
long version). Seeded: a failure names the seed and index that rebuild its case.

``PIXELFLOW_FUZZ_SPECS`` (default 1000, 2-3 minutes on 2 cores) and ``PIXELFLOW_FUZZ_SEED`` (default:
a fixed seed, so the suite is repeatable; set another to explore) bound the run."""

from __future__ import annotations

import os
from collections import Counter
from typing import get_args

from bench.fuzz import ENGINE_THREADS, run_cases
from devstack.specgen import OUTPUT_FORMATS, STEP_MAKERS, assets, case_at, sources
from pipeline.dsl import STEP_TYPES
from pipeline.dsl.types import OutputFormat
from pipeline.ops import REGISTRY
from pipeline.sandbox import Sandbox, SandboxConfig
from pipeline.sniff import SourceFormat

SPECS = int(os.environ.get("PIXELFLOW_FUZZ_SPECS", "1000"))
SEED = int(os.environ.get("PIXELFLOW_FUZZ_SEED", "20260423"))


def test_the_generator_covers_the_whole_dsl_and_every_input_format() -> None:
    assert (
        set(STEP_MAKERS) == {t.__struct_config__.tag for t in STEP_TYPES} == {t.__struct_config__.tag for t in REGISTRY}
    )
    assert set(OUTPUT_FORMATS) == set(get_args(OutputFormat))
    made = {name.split("-")[0] for name in sources(SEED)}
    assert made == set(get_args(SourceFormat)), "a source of every format the engine reads"
    cases = [case_at(SEED, i, ["jpeg"]) for i in range(200)]
    ops = Counter(s["op"] for c in cases for v in c.spec["pipeline"] for s in v.get("steps", []))
    formats = Counter(v["format"] for c in cases for v in c.spec["pipeline"])
    assert set(ops) == set(STEP_MAKERS) and set(formats) == set(OUTPUT_FORMATS)
    assert any(len(c.spec["pipeline"]) == 12 for c in cases) and any(
        "from" in v for c in cases for v in c.spec["pipeline"]
    )
    assert case_at(SEED, 7, ["jpeg"]) == case_at(SEED, 7, ["jpeg"])  # a case is rebuilt from its seed and index


def test_random_valid_specs_succeed_or_fail_for_their_input() -> None:
    images = {name: s.data for name, s in sources(SEED).items()}
    restarts: list[str] = []
    sandboxes = [Sandbox(SandboxConfig(vips_concurrency=n), on_restart=restarts.append) for n in ENGINE_THREADS]
    try:
        tally = run_cases(
            (case_at(SEED, i, list(images)) for i in range(SPECS)),
            sandboxes=sandboxes, images=images, store=assets(SEED),
        )  # fmt: skip
    finally:
        for sandbox in sandboxes:
            sandbox.close()
    defects = "\n".join(f"{what}\n  {case.describe()}" for what, case in tally.defects)
    assert not tally.defects, f"{tally.summary()}\n{defects}"
    assert [r for r in restarts if r != "recycled"] == [], tally.summary()  # a retried crash is still a crash
    assert tally.tried == SPECS and tally.succeeded >= SPECS // 2, tally.summary()  # most specs do run


def test_the_bench_reports_its_counts_and_reproduces_one_case(capsys) -> None:
    from bench.fuzz import main

    assert main(["--specs", "4", "--seed", str(SEED)]) == 0
    assert "tried 4 specs: " in capsys.readouterr().out
    assert main(["--seed", str(SEED), "--only", "2"]) == 0
    assert case_at(SEED, 2, list(sources(SEED))).describe() in capsys.readouterr().out
