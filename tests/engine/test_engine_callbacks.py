"""No callback from libvips into Python may outlive the object it points to (issue 23).

The engine used to watch its deadline from libvips' ``eval`` signal. pyvips keeps a signal's cffi
handle in one Python wrapper, but libvips' operation cache hands the same C image to an identical
operation in another branch after that wrapper is gone; evaluating that branch then called a
freed handle and the engine aborted (``ffi.from_handle() ... points to garbage``). The spec below
crashed the engine child in 10 of 10 runs before the hook was dropped (the parent's SIGKILL is
the deadline now)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.imagegen import encode, photo
from pipeline.dsl import Limits, decode_job_spec, encode_job_spec
from pipeline.errors import EngineCrashed
from pipeline.sandbox import EngineRequest, Sandbox, SandboxConfig

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
INSIDE_1024 = {"op": "resize", "width": 1024, "height": 1024, "fit": "inside"}
# w1 and its twins are materialized (the twins share its pixels), so the lazy resize's wrapper is
# dropped while the cache keeps its C image; the AVIF's identical resize gets that image back.
SHARED_RESIZE = [
    {"id": "w1", "steps": [INSIDE_1024], "format": "webp"},
    {"id": "w2", "steps": [INSIDE_1024], "format": "webp"},
    {"id": "w3", "steps": [INSIDE_1024], "format": "webp"},
    {"id": "j", "steps": [{**INSIDE_1024, "width": 1600, "height": 1600}], "format": "jpeg"},
    {"id": "p", "steps": [{"op": "resize", "width": 400, "height": 400, "gravity": "attention"}], "format": "png"},
    {"id": "a", "steps": [INSIDE_1024, {"op": "watermark", "text": "PixelFlow"}], "format": "avif", "effort": 0},
]


def test_a_resize_shared_through_the_operation_cache_does_not_abort_the_engine() -> None:
    spec = encode_job_spec(decode_job_spec(json.dumps({"version": 1, "pipeline": SHARED_RESIZE})))
    request = EngineRequest(encode(photo(1200, 900, seed=5), ".jpg"), spec, Limits(max_job_cost=10**9))
    restarts: list[str] = []  # a crash retried on a fresh child still shows here
    sb = Sandbox(SandboxConfig(), on_restart=restarts.append)
    failed = 0
    try:
        for _ in range(10):
            try:
                result = sb.run(request, timeout=120)
            except EngineCrashed:
                failed += 1
                continue
            assert [v.id for v in result.variants] == ["w1", "w2", "w3", "j", "p", "a"]
    finally:
        sb.close()
    assert (failed, restarts) == (0, []), f"{failed} of 10 runs failed; children replaced: {restarts}"


@pytest.mark.parametrize("call", ["signal_connect", "set_progress"])
def test_the_engine_connects_no_libvips_callbacks(call: str) -> None:
    users = [str(p.relative_to(PIPELINE)) for p in PIPELINE.rglob("*.py") if f".{call}(" in p.read_text()]
    assert users == [], f"{call} hands libvips a pointer into a Python object that can die first"
