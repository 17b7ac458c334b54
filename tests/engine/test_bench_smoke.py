"""The benchmark's four implementations must agree on every output size, or its ratios mean nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
from pathlib import Path

import pytest

from bench.delivery import main as delivery
from bench.delivery import parse_signing_key, sign
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


@pytest.mark.parametrize(
    "printed",
    [
        '{"client": "c", "kid": "sk_1a2b", "secret": "s3-cr_et", "created_at": "2026-01-01T00:00:00Z"}',
        "signing key sk_1a2b for c\nsecret (shown once): s3-cr_et",
        "kid: sk_1a2b\nsecret: s3-cr_et",
        "sk_1a2b s3-cr_et",
    ],
)
def test_delivery_benchmark_reads_the_signing_key_however_it_is_printed(printed: str) -> None:
    assert parse_signing_key(printed) == ("sk_1a2b", "s3-cr_et")


def test_delivery_benchmark_signs_the_path_after_the_signature() -> None:
    path = sign("sk_1", "secret", "webp", "a.jpg")
    sig, rest = path.removeprefix("/img/").split("/", 1)
    assert rest == "sk_1/w:512/fit:inside/f:webp/q:80/asset:a.jpg"
    mac = hmac.new(b"secret", b"/" + rest.encode(), hashlib.sha256).digest()
    assert sig == base64.urlsafe_b64encode(mac).decode().rstrip("=") and "=" not in sig
