"""The benchmark's four implementations must agree on every output size, or its ratios mean nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.delivery import main as delivery
from bench.engine import check_outputs_match, make_corpus
from bench.service import SPEC, pct
from pipeline.dsl import decode_job_spec


def test_engine_benchmark_implementations_agree(tmp_path: Path) -> None:
    check_outputs_match(make_corpus(tmp_path, quick=True))  # raises SystemExit on any mismatch


def test_service_benchmark_spec_is_valid_and_percentiles() -> None:
    assert len(decode_job_spec(SPEC).pipeline) == 3
    assert pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) in (5, 6)
    assert pct([1, 2, 3], 99) == 3


def test_delivery_benchmark_runs_against_the_floor(tmp_path: Path) -> None:
    """The delivery harness end to end for 1 s: sources, the floor's processes, wrk, the table."""
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: bash build/services.sh installs it")
    out = tmp_path / "delivery.json"
    delivery(
        [
            "--sources",
            "2",
            "--duration",
            "1",
            "--connections",
            "2",
            "--formats",
            "jpeg",
            "--targets",
            "floor",
            "--processes",
            "1",
            "--out",
            str(out),
        ]
    )
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["target"], row["format"], row["mode"]) == ("floor", "jpeg", "cold")
    assert row["requests"] > 0 and row["errors"] == 0 and row["peak_rss_mb"] > 0
