"""One sandboxed engine per concurrent job, driven from the event loop.

Each run blocks a thread on its child's pipe while the loop stays free for lease renewals,
uploads, webhooks and cancel notices. Whatever ends the coroutine (a cancel notice, the drain
on SIGTERM, arq's own timeout) kills the child, so no work outlives the job that asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

from infra.metrics import ENGINE_RESTARTS
from infra.settings import Settings
from infra.telemetry import record_span
from pipeline.sandbox import EngineRequest, EngineResult, Sandbox, SandboxConfig

__all__ = ["INTERACTIVE_LANE", "NORMAL_LANE", "CpuMeter", "EnginePool", "sandbox_config"]

# A worker's slots, by the arq queue they take tickets from: normal slots (PIXELFLOW_WORKER_CONCURRENCY)
# from the deployment's queue, interactive ones (PIXELFLOW_INTERACTIVE_SLOTS) from their own; each
# claims only what may run in it (infra.repo.jobs.JobRepo.claim_next) and runs it on its lane's engines.
NORMAL_LANE, INTERACTIVE_LANE = "normal", "interactive"
# How much nicer a normal slot's engine runs than an interactive one's: at 5 the kernel gives a
# busy interactive engine about three times the CPU share of each busy normal one.
NORMAL_NICE = 5

_MB = 1024 * 1024


def sandbox_config(settings: Settings) -> SandboxConfig:
    return SandboxConfig(
        memory_limit_bytes=settings.engine_memory_limit_mb * _MB,
        recycle_rss_bytes=settings.engine_recycle_rss_mb * _MB,
        max_jobs=settings.engine_max_jobs,
        # one libvips thread per job: parallelism comes from concurrent jobs and worker processes
        vips_concurrency=1,
    )


def _count_restart(reason: str) -> None:
    ENGINE_RESTARTS.labels(reason).inc()


@dataclass
class CpuMeter:
    """The engine CPU one job run spent, however the run ended: a result, an engine error, a
    kill (deadline, memory, cancel) or the caller's coroutine canceled (the drain), which the
    sandbox's own error cannot report. What usage bills (infra/repo/usage.py) and the client's
    fair share is trued up to (``JobRepo.settle``)."""

    cpu_seconds: float = 0.0


class EnginePool:
    """``size`` engines per lane (``{"normal": 2, "interactive": 1}``): a lane's runs use only its
    own engines, so an interactive slot never waits for an engine a normal run holds."""

    def __init__(self, config: SandboxConfig, size: dict[str, int]) -> None:
        # Normal slots' engines yield the CPU to interactive ones when both have work (without
        # interactive slots there is nothing to yield to, and they keep the host's priority).
        nice = NORMAL_NICE if size.get(INTERACTIVE_LANE) else 0
        configs = {lane: replace(config, nice=nice if lane == NORMAL_LANE else 0) for lane in size}
        self._lanes = {
            lane: [Sandbox(configs[lane], on_restart=_count_restart) for _ in range(n)] for lane, n in size.items()
        }
        self.sandboxes = [s for lane in self._lanes.values() for s in lane]
        self._threads = ThreadPoolExecutor(max(1, len(self.sandboxes)), thread_name_prefix="pixelflow-engine")
        self._idle: dict[str, asyncio.Queue[Sandbox]] = {lane: asyncio.Queue() for lane in self._lanes}
        self._running: dict[str, Sandbox] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for lane, sandboxes in self._lanes.items():
            for sandbox in sandboxes:
                await loop.run_in_executor(self._threads, sandbox.start)
                self._idle[lane].put_nowait(sandbox)

    async def run(
        self, key: str, request: EngineRequest, *, timeout: float, lane: str, meter: CpuMeter | None = None
    ) -> EngineResult:
        """Run ``request`` in an idle child of ``lane`` under ``key`` (the job id, for ``cancel``);
        the child's stages become spans under the current one. ``meter`` gets the run's CPU,
        however it ends."""
        meter = meter if meter is not None else CpuMeter()
        idle = self._idle[lane]
        sandbox = await idle.get()
        self._running[key] = sandbox
        future = asyncio.get_running_loop().run_in_executor(
            self._threads, partial(sandbox.run, request, timeout=timeout)
        )
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            sandbox.kill()
            with contextlib.suppress(BaseException):
                await asyncio.wait([future])  # the child is gone in milliseconds; reuse it only then
            if future.done() and not future.cancelled():
                done = future.exception() or future.result()
                meter.cpu_seconds += getattr(done, "cpu_seconds", 0.0)  # killed (EngineCanceled), or it had just ended
            raise
        except BaseException as exc:
            meter.cpu_seconds += getattr(exc, "cpu_seconds", 0.0)  # set by the sandbox on every error it raises
            for stage in getattr(exc, "stages", ()):
                record_span(stage.name, stage.start_ns, stage.end_ns, stage.attributes)
            raise
        finally:
            if self._running.get(key) is sandbox:
                del self._running[key]
            idle.put_nowait(sandbox)  # always: a sandbox lost here would stall every later job
        meter.cpu_seconds += result.cpu_seconds
        for stage in result.stages:
            record_span(stage.name, stage.start_ns, stage.end_ns, stage.attributes)
        return result

    def cancel(self, key: str) -> bool:
        """Kill the child running ``key`` now; False if this process is not running it."""
        sandbox = self._running.get(key)
        return sandbox.kill() if sandbox is not None else False

    def running(self) -> list[str]:
        return list(self._running)

    def memory(self) -> list[int]:
        return [rss for s in self.sandboxes if (rss := s.rss()) is not None]

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, s.close) for s in self.sandboxes))
        self._threads.shutdown(wait=False, cancel_futures=True)
