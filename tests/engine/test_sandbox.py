"""The engine in a killable child process: every way a run can end, on real libvips work.

Timings here are bounds on promises (a kill at the deadline), with room for a loaded machine
(tests/timing.py), not performance figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from devstack.imagegen import encode, photo
from pipeline.dsl import Limits, decode_job_spec, encode_job_spec
from pipeline.errors import CorruptImage, DeadlineExceeded, EngineCrashed, OutOfMemory
from pipeline.sandbox import EngineCanceled, EngineRequest, Sandbox, SandboxConfig
from tests.timing import SLACK

ROOT = Path(__file__).resolve().parents[2]
BIG_LIMITS = Limits(max_job_cost=10**9)  # these specs are slow on purpose; the budget is tested elsewhere


def spec(*variants: dict) -> bytes:
    return encode_job_spec(decode_job_spec(json.dumps({"version": 1, "pipeline": list(variants)})))


QUICK = spec({"id": "t", "action": "resize", "width": 64, "format": "jpeg"})
# AVIF at effort 9 takes tens of seconds per megapixel inside one libaom call that never checks
# libvips' kill flag: only killing the process stops it.
SLOW = spec({"id": "a", "steps": [], "format": "avif", "effort": 9})


@pytest.fixture(scope="module")
def small_jpeg() -> bytes:
    return encode(photo(320, 240), ".jpg")


@pytest.fixture(scope="module")
def slow_source() -> bytes:
    return encode(photo(1600, 1200, seed=3), ".jpg")


@pytest.fixture
def sandbox():
    sb = Sandbox(SandboxConfig(vips_concurrency=1))
    sb.start()
    yield sb
    sb.close()


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_run_returns_variants_and_stages(sandbox: Sandbox, small_jpeg: bytes) -> None:
    result = sandbox.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=30)
    (v,) = result.variants
    assert (v.id, v.format, v.width, v.height) == ("t", "jpeg", 64, 48)
    assert v.data[:2] == b"\xff\xd8" and v.bytes == len(v.data)
    assert (result.source.format, result.source.width, result.source.height) == ("jpeg", 320, 240)
    assert {s.name for s in result.stages} >= {"pipeline.probe", "pipeline.decode", "pipeline.variant"}
    assert all(s.end_ns >= s.start_ns > 0 for s in result.stages)
    assert 0 < result.cpu_seconds < 5  # the child's own CPU time for this run, for usage metering


def test_engine_errors_cross_the_boundary_typed(sandbox: Sandbox, small_jpeg: bytes) -> None:
    with pytest.raises(CorruptImage) as err:
        sandbox.run(EngineRequest(small_jpeg[: len(small_jpeg) // 3] + b"\xff\xd9", QUICK, Limits()), timeout=30)
    assert err.value.code == "corrupt_image"
    assert 0 < err.value.cpu_seconds < 5  # type: ignore[attr-defined]  # a failed run's CPU counts too
    pid = sandbox.pid
    assert sandbox.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=30).variants  # same child goes on
    assert sandbox.pid == pid


def test_deadline_kills_the_child_inside_a_single_call_encoder(sandbox: Sandbox, slow_source: bytes) -> None:
    pid = sandbox.pid
    assert pid is not None
    deadline = 1.0
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as err:
        sandbox.run(EngineRequest(slow_source, SLOW, BIG_LIMITS), timeout=deadline)
    elapsed = time.monotonic() - started
    # not before the deadline; after it, only as late as a loaded machine makes the kill (the
    # encode it stops runs for over a minute)
    assert deadline <= elapsed < deadline + SLACK, elapsed
    assert err.value.code == "deadline_exceeded" and "1 s" in err.value.public
    # read from the dead child's /proc entry before it was reaped: what it ran until the kill,
    # which a busy machine can make far less than the second that passed
    assert 0 < err.value.cpu_seconds <= elapsed * (os.cpu_count() or 1), err.value.cpu_seconds  # type: ignore[attr-defined]
    assert not _alive(pid), "the killed child must be gone"
    assert sandbox.pid != pid  # a replacement is already starting
    small = encode(photo(320, 240), ".jpg")
    assert sandbox.run(EngineRequest(small, QUICK, Limits()), timeout=30).variants


def test_kill_from_another_thread_cancels_the_run(sandbox: Sandbox, slow_source: bytes) -> None:
    pid = sandbox.pid
    assert pid is not None
    kill_at = 0.5
    timer = threading.Timer(kill_at, sandbox.kill)
    timer.start()
    started = time.monotonic()
    with pytest.raises(EngineCanceled):
        sandbox.run(EngineRequest(slow_source, SLOW, BIG_LIMITS), timeout=60)
    assert time.monotonic() - started < kill_at + SLACK  # the encode alone runs for over a minute
    assert not _alive(pid)
    assert sandbox.kill() is False  # nothing running now


# Child hooks (SandboxConfig.child_hook) run in the engine child at "starting", "decoding" and
# "decoded": module-level, so the spawned child can unpickle them.
def _abort_at(point: str, reached: str) -> None:
    if reached == point:
        os.abort()


def _pause_once_at(point: str, marker: str, reached: str) -> None:
    """The first child to get here (the one that removes ``marker``) stops for a minute."""
    if reached == point and os.path.exists(marker):
        os.remove(marker)
        time.sleep(60)


def _abort_once_then_start_slowly(marker: str, ready: str, reached: str) -> None:
    if reached == "starting" and os.path.exists(marker):
        Path(ready).touch()  # the first child has loaded libvips
    if reached == "decoded" and os.path.exists(marker):
        os.remove(marker)
        os.abort()
    if reached == "starting" and not os.path.exists(marker):
        time.sleep(60)


def _start_slowly(reached: str) -> None:
    if reached == "starting":
        time.sleep(60)


def _hooked(hook, **config: object) -> tuple[Sandbox, list[str]]:
    restarts: list[str] = []
    return Sandbox(SandboxConfig(vips_concurrency=1, child_hook=hook, **config), on_restart=restarts.append), restarts


def test_a_child_killed_from_outside_mid_job_is_retried_on_a_fresh_child(tmp_path: Path, small_jpeg: bytes) -> None:
    marker = tmp_path / "pause"
    marker.touch()
    sb, restarts = _hooked(partial(_pause_once_at, "decoded", str(marker)))
    sb.start()
    first = sb.pid
    assert first is not None

    def kill_when_paused() -> None:  # not Sandbox.kill: to the parent this child died by itself
        while marker.exists():
            time.sleep(0.01)
        os.kill(first, signal.SIGKILL)

    threading.Thread(target=kill_when_paused, daemon=True).start()
    try:
        result = sb.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=60)
        assert [v.id for v in result.variants] == ["t"]
        assert restarts == ["crashed"] and sb.pid != first and not _alive(first)
        assert result.cpu_seconds > 0  # both runs' CPU time
    finally:
        sb.close()


@pytest.mark.parametrize(
    ("point", "public", "where"),
    [
        ("decoded", "the image engine stopped unexpectedly (twice)", "after the source decoded"),
        (
            "decoding",
            "the image engine stopped unexpectedly while decoding this image (twice)",
            "while decoding the source",
        ),
    ],
)
def test_a_child_that_dies_every_time_is_engine_crashed_after_two_runs(
    small_jpeg: bytes, point: str, public: str, where: str
) -> None:
    sb, restarts = _hooked(partial(_abort_at, point))
    try:
        with pytest.raises(EngineCrashed) as err:
            sb.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=60)
        assert restarts == ["crashed", "crashed"]  # exactly two runs
        assert err.value.code == "engine_crashed"
        assert err.value.public == f"{public}; this is an engine failure, not a problem with the image"
        how = f"signal {signal.SIGABRT} {where}"
        assert err.value.detail == f"run 1: {how}; run 2: {how}"
        assert err.value.cpu_seconds > 0  # type: ignore[attr-defined]  # both runs' CPU time
    finally:
        sb.close()


def test_a_deadline_that_passes_before_the_child_has_started_is_deadline_exceeded(small_jpeg: bytes) -> None:
    restarts: list[str] = []
    cold = Sandbox(SandboxConfig(vips_concurrency=1), on_restart=restarts.append)  # its child is spawned by run
    try:
        with pytest.raises(DeadlineExceeded):
            cold.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=0.001)
        assert restarts == ["deadline"]
        assert cold.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=30).variants
    finally:
        cold.close()
    slow, restarts = _hooked(_start_slowly)  # a loaded machine: the hello comes after the deadline
    try:
        with pytest.raises(DeadlineExceeded, match=r"longer than 0\.5 s"):
            slow.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=0.5)
        assert restarts == ["deadline"]
    finally:
        slow.close()


def test_a_child_stuck_starting_while_time_remains_is_a_crash(small_jpeg: bytes) -> None:
    sb, restarts = _hooked(_start_slowly, startup_seconds=0.2)
    try:
        with pytest.raises(EngineCrashed) as err:
            sb.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=60)
        assert restarts == ["crashed", "crashed"]
        assert err.value.detail == "run 1: stuck for 0.2 s while starting; run 2: stuck for 0.2 s while starting"
    finally:
        sb.close()


def test_a_retry_that_runs_out_of_time_is_deadline_exceeded(tmp_path: Path, small_jpeg: bytes) -> None:
    """The replacement for a child that died is still starting when the job's time is up."""
    marker, ready = tmp_path / "abort", tmp_path / "ready"
    marker.touch()
    sb, restarts = _hooked(partial(_abort_once_then_start_slowly, str(marker), str(ready)))
    sb.start()
    # the first child's start is not what the deadline is for: a loaded machine can take seconds
    until = time.monotonic() + 3 * SLACK
    while not ready.exists() and time.monotonic() < until:
        time.sleep(0.05)
    try:
        with pytest.raises(DeadlineExceeded) as err:
            sb.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=5)
        assert restarts == ["crashed", "deadline"]
        assert err.value.cpu_seconds > 0  # type: ignore[attr-defined]  # the first child's run
    finally:
        sb.close()


def test_memory_cap_turns_a_runaway_into_out_of_memory() -> None:
    import pyvips

    # 49 MP that compresses to a few KB; rotating by 33 degrees needs the whole decoded source in
    # memory (147 MB) and more for the output.
    flat = pyvips.Image.black(7000, 7000, bands=3).copy(interpretation="srgb").pngsave_buffer(compression=9)
    rotate = spec({"id": "r", "steps": [{"op": "rotate", "angle": 33}], "format": "png", "effort": 0})
    sb = Sandbox(SandboxConfig(vips_concurrency=1, memory_limit_bytes=150 * 1024**2, recycle_rss_bytes=100 * 1024**2))
    try:
        with pytest.raises(OutOfMemory) as err:
            sb.run(EngineRequest(flat, rotate, BIG_LIMITS), timeout=60)
        assert err.value.code == "out_of_memory" and "150 MB" in err.value.public
        small = encode(photo(320, 240), ".jpg")
        assert sb.run(EngineRequest(small, QUICK, Limits()), timeout=30).variants
        assert (sb.rss() or 0) < 150 * 1024**2
    finally:
        sb.close()


def test_children_are_recycled_after_max_jobs(small_jpeg: bytes) -> None:
    restarts: list[str] = []
    sb = Sandbox(SandboxConfig(vips_concurrency=1, max_jobs=2), on_restart=restarts.append)
    sb.start()
    try:
        pids = []
        for _ in range(5):
            pids.append(sb.pid)
            sb.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=30)
        assert restarts == ["recycled", "recycled"]
        assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    finally:
        sb.close()


def test_children_die_with_their_parent(tmp_path: Path, slow_source: bytes) -> None:
    """A SIGKILLed worker must not leave its engine burning CPU as an orphan."""
    source = tmp_path / "slow.jpg"
    source.write_bytes(slow_source)
    script = (
        "import sys, time\n"
        "from pipeline.sandbox import Sandbox, SandboxConfig, EngineRequest\n"
        "from pipeline.dsl import Limits\n"
        "from tests.engine.test_sandbox import SLOW\n"
        "if __name__ == '__main__':\n"
        "    sb = Sandbox(SandboxConfig(vips_concurrency=1)); sb.start()\n"
        "    print(sb.pid, flush=True)\n"
        "    sb.run(EngineRequest(open(sys.argv[1], 'rb').read(), SLOW, Limits(max_job_cost=10**9)), timeout=120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(source)], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        time.sleep(1.0)
        before = _cpu_ticks(child)
        assert before is not None and _alive(child)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + SLACK  # it dies at once; this only stops a hung test
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the engine outlived its killed parent"
    finally:
        proc.kill()


def _abort_once_at(point: str, marker: str, reached: str) -> None:
    if reached == point and os.path.exists(marker):
        os.remove(marker)
        os.abort()


def test_a_cancel_while_a_dead_child_is_replaced_is_not_lost(tmp_path: Path, small_jpeg: bytes) -> None:
    """The retry must not run a job canceled between the crash and the retry."""
    marker = tmp_path / "abort"
    marker.touch()
    sb, restarts = _hooked(partial(_abort_once_at, "decoded", str(marker)))
    original = sb._after_death

    def cancel_during_replacement(timeout: float) -> object:
        outcome = original(timeout)
        if sb.kill():  # the caller cancels just as the replacement starts
            assert sb._proc is not None
            sb._proc.join(5)  # and that child is gone before the retry looks at it
        return outcome

    sb._after_death = cancel_during_replacement  # type: ignore[method-assign]
    try:
        with pytest.raises(EngineCanceled):
            sb.run(EngineRequest(small_jpeg, QUICK, Limits()), timeout=60)
        assert restarts[:2] == ["crashed", "canceled"]
    finally:
        sb.close()
