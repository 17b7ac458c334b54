"""The benchmark's four implementations must agree on every output size, or its ratios mean nothing."""

from __future__ import annotations

from pathlib import Path

from bench.engine import check_outputs_match, make_corpus
from bench.service import SPEC, pct
from pipeline.dsl import decode_job_spec


def test_engine_benchmark_implementations_agree(tmp_path: Path) -> None:
    check_outputs_match(make_corpus(tmp_path, quick=True))  # raises SystemExit on any mismatch


def test_service_benchmark_spec_is_valid_and_percentiles() -> None:
    assert len(decode_job_spec(SPEC).pipeline) == 3
    assert pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) in (5, 6)
    assert pct([1, 2, 3], 99) == 3
