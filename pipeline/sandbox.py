"""The engine in a child process its caller can kill.

This is the engine's deadline. libvips' kill flag is looked at only between evaluation steps
(single-call encoders (AVIF), librsvg and smartcrop never do), setting it needs a callback from C
into Python that can outlive its wrapper (pipeline/engine.py ``_evaluate``), and a thread cannot
be stopped from outside. A process can. A ``Sandbox`` owns one pre-spawned child that runs jobs
one at a time, and the parent owns the clock, the memory cap and cancellation. Every way a run
can end is a typed outcome:

- the result, or the ``PipelineError`` the engine raised, rebuilt from its code;
- the deadline passed: child SIGKILLed, ``DeadlineExceeded``;
- its RSS passed the cap: child SIGKILLed, ``OutOfMemory``;
- ``kill()`` from any thread (a cancel): ``EngineCanceled``;
- the child died by itself (a decoder fault, the kernel's OOM killer, stuck starting): the job runs
  once more on a fresh child within the same deadline; a second death is ``EngineCrashed``, whose
  detail says where each child died (a byte the child shares with the parent marks its progress).

Running out of time is ``DeadlineExceeded`` wherever it happens: in the engine, or while a child
is still starting, or a replacement is.

Every outcome carries the CPU time the run took (``cpu_seconds`` on the result or the raised
error; both runs' for a retried job), for usage metering: the child measures its own process CPU
time (all threads) when it replies; for a child that never replied, the parent reads the dead
child's counters from ``/proc`` before reaping it (10 ms resolution).

A killed or dead child is replaced at once (spawning one takes ~0.3 s: libvips imported and the
common codecs warmed by one small job, see ``_warm_up``), and
children are recycled after ``max_jobs`` runs or when a run leaves them above
``recycle_rss_bytes``, before leaks and allocator fragmentation become the worker's problem.

Bytes cross one pipe as msgpack frames: 50 MB takes ~70 ms here, a typical upload well under 1 ms;
shared memory would save little against the encode that follows.
"""

from __future__ import annotations

import builtins
import contextlib
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from pipeline.details import SourceDetails
from pipeline.dsl.limits import Limits
from pipeline.errors import (
    DeadlineExceeded,
    EngineCrashed,
    InternalError,
    OutOfMemory,
    PipelineError,
    rebuild_error,
)

__all__ = [
    "EngineCanceled",
    "EngineRequest",
    "EngineResult",
    "Sandbox",
    "SandboxConfig",
    "SourceResult",
    "Stage",
    "VariantResult",
]

_POLL_SECONDS = 0.05  # how often the parent looks at the clock and the child's memory
_HELLO = b"ready"
_PAGE = os.sysconf("SC_PAGE_SIZE")


class EngineCanceled(Exception):
    """The run was stopped with ``Sandbox.kill()``; its work is discarded."""


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    memory_limit_bytes: int = 2 * 1024**3
    recycle_rss_bytes: int = 768 * 1024**2
    max_jobs: int = 200
    vips_concurrency: int | None = None  # None: libvips' default (one thread per core)
    startup_seconds: float = 30.0  # a child starts in ~0.3 s; one that has not said hello by then is stuck
    # Called in the child at each point it reaches ("starting", "decoding", "decoded"), so tests
    # can make a child slow or crash exactly there. A module-level function: it is pickled.
    child_hook: Callable[[str], object] | None = None
    # The child's CPU niceness (0: the caller's). A worker runs its normal slots' engines a little
    # nicer than its interactive slots', so a thumbnail a user waits on is not slowed down by the
    # deadline-length jobs beside it; alone, niceness changes nothing.
    nice: int = 0


class EngineRequest(msgspec.Struct, frozen=True):
    data: bytes
    spec: bytes  # the normalised JSON spec
    limits: Limits
    assets: dict[str, bytes] = {}


class SourceResult(msgspec.Struct, frozen=True):
    format: str
    width: int
    height: int
    pages: int
    orientation: int
    bytes: int


class VariantResult(msgspec.Struct, frozen=True):
    id: str
    format: str
    content_type: str
    width: int
    height: int
    data: builtins.bytes  # `bytes` is the property below inside this class body
    quality: int | None = None  # a lossy encoder's quality (with `max_bytes`: the one chosen)
    frames: int = 1  # an animation's frames; 1 for a still or an animation's first frame

    @property
    def bytes(self) -> int:
        return len(self.data)


class Stage(msgspec.Struct, frozen=True, array_like=True):
    """One engine stage as the child timed it (wall clock, so the parent can replay it as a span)."""

    name: str
    attributes: dict[str, Any]
    start_ns: int
    end_ns: int


class EngineResult(msgspec.Struct, frozen=True):
    source: SourceResult
    variants: list[VariantResult]
    stages: list[Stage] = []
    details: SourceDetails | None = None  # the spec's `info`, when it asks
    cpu_seconds: float = 0.0  # the child's CPU time for this run, every thread


class _Failure(msgspec.Struct, frozen=True):
    code: str
    public: str
    detail: str | None
    stages: list[Stage] = []


class _Reply(msgspec.Struct, frozen=True):
    ok: EngineResult | None = None
    error: _Failure | None = None
    cpu_seconds: float = 0.0


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(EngineRequest).decode
_decode_reply = msgspec.msgpack.Decoder(_Reply).decode

_DEADLINE, _MEMORY, _CANCELED = "deadline", "memory", "canceled"

# Where a child is in a job, in a byte it shares with the parent: a child that dies says nothing,
# so the parent reads this to tell a crash while decoding from one after it.
_STARTING, _IDLE, _DECODING, _DECODED = -1, 0, 1, 2  # _STARTING: the parent's, before the hello
_WHERE = {
    _STARTING: "while starting",
    _IDLE: "before it started the job",
    _DECODING: "while decoding the source",
    _DECODED: "after the source decoded",
}


@dataclass(frozen=True, slots=True)
class _Crash:
    """One run's child that died by itself: how (a signal, an exit code) and where in the job."""

    how: str
    stage: int
    cpu_seconds: float

    def __str__(self) -> str:
        return f"{self.how} {_WHERE.get(self.stage, '')}".rstrip()


class _Died(Exception):
    def __init__(self, crash: _Crash) -> None:
        super().__init__(str(crash))
        self.crash = crash


class Sandbox:
    """One engine child. ``run`` is blocking and meant for one thread at a time; ``kill`` may be
    called from any thread."""

    def __init__(
        self, config: SandboxConfig | None = None, *, on_restart: Callable[[str], object] | None = None
    ) -> None:
        """``on_restart(reason)``: called when a child is replaced (deadline, memory, canceled,
        crashed, recycled), for metrics."""
        self.config = config or SandboxConfig()
        self._on_restart = on_restart
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that has threads
        self._lock = threading.Lock()
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._stage: Any = None  # the child's shared stage byte (_IDLE, _DECODING, _DECODED)
        self._jobs = 0
        self._busy = False
        self._ready = False  # the child said it is listening: a request can be sent without blocking
        self._kill_reason: str | None = None
        self._stuck = False  # the child was killed for not starting in time: a crash of ours

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._discard()
        parent, child = self._ctx.Pipe()
        stage = self._ctx.RawValue("b", _IDLE)
        proc = self._ctx.Process(
            target=_child_main, args=(child, stage, self.config), name="pixelflow-engine", daemon=True
        )
        proc.start()
        child.close()
        if self.config.nice and proc.pid is not None:
            with contextlib.suppress(OSError):  # lowering a child's priority needs no privilege
                os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + self.config.nice)
        self._proc, self._conn, self._stage, self._jobs, self._ready = proc, parent, stage, 0, False

    def rss(self) -> int | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return None

    def run(self, request: EngineRequest, *, timeout: float) -> EngineResult:
        """Run one job in the child; raises the engine's ``PipelineError``, ``DeadlineExceeded``,
        ``OutOfMemory``, ``EngineCrashed`` or ``EngineCanceled``.

        A child that dies by itself (not killed here for the deadline, the memory cap or a
        cancel) is replaced and the job runs once more on the fresh child, within the same
        deadline: a fault of one process (a stray pointer, the kernel's OOM killer choosing it)
        should not fail a customer's job. A second death is ``EngineCrashed``. Every outcome's
        ``cpu_seconds`` counts both runs."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._busy, self._kill_reason = True, None
        crashes: list[_Crash] = []
        try:
            while True:
                try:
                    result = self._attempt(request, deadline, timeout)
                except _Died as died:
                    crashes.append(died.crash)
                    if len(crashes) == 1 and time.monotonic() < deadline:
                        continue  # the replacement is already starting
                    raise _with_cpu(_engine_crashed(crashes), crashes) from None
                except (PipelineError, EngineCanceled) as exc:
                    raise _with_cpu(exc, crashes) from None
                return msgspec.structs.replace(result, cpu_seconds=result.cpu_seconds + _cpu_of(crashes))
        finally:
            with self._lock:
                self._busy = False

    def kill(self, reason: str = _CANCELED) -> bool:
        """Stop the running job now (SIGKILL). False if nothing was running."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.pid is None or not self._busy or self._kill_reason is not None:
                return False
            self._kill_reason = reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        return True

    def close(self) -> None:
        with self._lock:
            self._retire(None, respawn=False)

    def _attempt(self, request: EngineRequest, deadline: float, timeout: float) -> EngineResult:
        """One run on the current child (started if need be); raises ``_Died`` if it dies by itself."""
        if self._kill_reason is not None:  # canceled while the child that died was being replaced
            error = self._after_death(timeout)
            assert not isinstance(error, str)  # a kill's reason: never a crash
            raise error
        with self._lock:
            self.start()
        pid, cpu_before = self.pid, _cpu_seconds(self.pid)
        frame = self._exchange(request, deadline)
        if frame is None:
            # Read before reaping: a dead child's counters stay in /proc until it is waited for.
            cpu = max(0.0, _cpu_seconds(self.pid) - (cpu_before if self.pid == pid else 0.0))
            stage = self._stage.value if self._ready and self._stage is not None else _STARTING
            error = self._after_death(timeout)
            if isinstance(error, str):
                raise _Died(_Crash(error, stage, cpu))
            error.cpu_seconds = cpu  # type: ignore[attr-defined]  # any error raised here carries its run's CPU
            raise error
        reply = _decode_reply(frame)
        self._jobs += 1
        rss = self.rss() or 0
        if self._jobs >= self.config.max_jobs or rss > self.config.recycle_rss_bytes:
            self._retire("recycled")
        if reply.error is not None:
            error = rebuild_error(reply.error.code, reply.error.public, reply.error.detail)
            error.stages = reply.error.stages  # type: ignore[attr-defined]  # traced by the caller too
            error.cpu_seconds = reply.cpu_seconds  # type: ignore[attr-defined]  # as above
            raise error
        assert reply.ok is not None
        return msgspec.structs.replace(reply.ok, cpu_seconds=reply.cpu_seconds)

    def _exchange(self, request: EngineRequest, deadline: float) -> bytes | None:
        """The child's reply, or None once it is dead (killed here, or by itself)."""
        assert self._conn is not None
        self._stuck = False
        if not self._ready and not self._await_ready(deadline):
            return None
        try:
            self._conn.send_bytes(_encode(request))
        except OSError:  # the child died while idle, or was killed while reading
            if self._kill_reason is not None:
                return None
            self._reap()  # an idle child's death is not this job's: one fresh child, silently
            with self._lock:
                self.start()
            if not self._await_ready(deadline):
                return None
            assert self._conn is not None
            try:
                self._conn.send_bytes(_encode(request))
            except OSError:
                return None
        conn = self._conn
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill(_DEADLINE)
                return None
            if conn.poll(min(_POLL_SECONDS, remaining)):
                try:
                    return conn.recv_bytes()
                except (EOFError, OSError):
                    return None  # the child is gone: killed by us, or died
            rss = self.rss()
            if rss is not None and rss > self.config.memory_limit_bytes:
                self.kill(_MEMORY)
                return None

    def _await_ready(self, deadline: float) -> bool:
        """Wait for the child's hello, so sending a large request cannot block on a child that
        never started reading. One that has not said it by the job's deadline is killed for the
        deadline; one stuck for ``startup_seconds`` while time remains is killed as a crash (a
        fresh child may start)."""
        assert self._conn is not None
        stuck_at = time.monotonic() + self.config.startup_seconds
        until = min(deadline, stuck_at)
        try:
            remaining = until - time.monotonic()
            if remaining > 0 and self._conn.poll(remaining) and self._conn.recv_bytes() == _HELLO:
                self._ready = True
                return True
        except (EOFError, OSError):
            return False  # it died starting: a crash
        if deadline <= stuck_at:
            self.kill(_DEADLINE)
        else:
            self._stuck = True
            pid = self.pid
            with contextlib.suppress(ProcessLookupError):
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
        return False

    def _after_death(self, timeout: float) -> BaseException | str:
        """The error for a child killed here, or how one that died by itself ended."""
        reason = self._kill_reason
        stuck = self._stuck
        exitcode = self._reap()
        self._note_restart(reason or "crashed")
        with self._lock:
            self.start()  # warm the replacement while the caller reports this one
        if reason == _DEADLINE:
            return DeadlineExceeded(f"processing took longer than {timeout:g} s")
        if reason == _MEMORY:
            return _out_of_memory(self.config)
        if reason == _CANCELED:
            return EngineCanceled()
        if stuck:
            return f"stuck for {self.config.startup_seconds:g} s"
        return f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"

    def _reap(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        exitcode = proc.exitcode
        self._discard()
        return exitcode

    def _retire(self, reason: str | None, *, respawn: bool = True) -> None:
        """Let the child finish its loop (EOF on its pipe), then replace it."""
        proc = self._proc
        if self._conn is not None:
            self._conn.close()
        if proc is not None:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._discard()
        if reason is not None:
            self._note_restart(reason)
        if respawn:
            self.start()

    def _note_restart(self, reason: str) -> None:
        if self._on_restart is not None:
            self._on_restart(reason)

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            with contextlib.suppress(ValueError):
                self._proc.close()
        self._proc, self._conn = None, None


def _cpu_of(crashes: list[_Crash]) -> float:
    return sum(c.cpu_seconds for c in crashes)


def _with_cpu(error: BaseException, crashes: list[_Crash]) -> BaseException:
    """``error`` (the last run's outcome) charged for the runs whose child died before it too."""
    error.cpu_seconds = getattr(error, "cpu_seconds", 0.0) + _cpu_of(crashes)  # type: ignore[attr-defined]  # see _attempt
    return error


def _engine_crashed(crashes: list[_Crash]) -> EngineCrashed:
    """The public message names the engine: the image was valid enough to start on, and a process
    that dies is ours to fix (the detail, for the logs, says how and where each run ended)."""
    where = " while decoding this image" if all(c.stage == _DECODING for c in crashes) else ""
    times = " (twice)" if len(crashes) > 1 else ""
    return EngineCrashed(
        f"the image engine stopped unexpectedly{where}{times}; this is an engine failure, not a problem with the image",
        detail="; ".join(f"run {i}: {crash}" for i, crash in enumerate(crashes, 1)),
    )


# --- the child ------------------------------------------------------------------------------


def _child_main(conn: Connection, stage: Any, config: SandboxConfig) -> None:
    # Ctrl-C and a SIGTERM to the process group are the parent's to handle: it decides whether a
    # running job finishes or is handed back. The child ends when its pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    tune_malloc(config.vips_concurrency)
    from pipeline.engine import process  # libvips loads now, not on the first job
    from pipeline.vips import configure_vips

    configure_vips(concurrency=config.vips_concurrency)
    _warm_up(process)
    _trim_if_large(0)  # the warm-up's buffers go back to the kernel: an idle child stays small
    hook = config.child_hook or (lambda point: None)
    hook("starting")
    try:
        conn.send_bytes(_HELLO)
    except OSError:
        return
    while True:
        try:
            frame = conn.recv_bytes()
        except (EOFError, OSError):
            return
        stage.value = _DECODING
        hook("decoding")
        request = _decode_request(frame)
        del frame
        cpu_before = time.process_time()
        reply = _run(process, request, config, stage, hook)
        reply = msgspec.structs.replace(reply, cpu_seconds=time.process_time() - cpu_before)
        del request
        try:
            conn.send_bytes(_encode(reply))
        except OSError:
            return
        stage.value = _IDLE
        del reply
        _trim_if_large(config.recycle_rss_bytes // 2)


def _warm_up(process: Any) -> None:
    """One tiny job through the common codecs before the child says hello. Their first use costs
    one-time set-up (measured: a 1200x900 JPEG to a 600 px WebP took 90 ms of CPU in a fresh
    child, 24 ms from the second job on), which would otherwise slow whichever job came first and
    be billed to its client, skewing fair shares of small jobs."""
    import pyvips

    from pipeline.dsl import decode_job_spec

    with contextlib.suppress(Exception):  # a warm-up that fails costs the first job its set-up, nothing else
        source = pyvips.Image.gaussnoise(1200, 900, mean=128, sigma=40).cast("uchar").bandjoin([128, 128])
        data = source.jpegsave_buffer()
        outputs = [{"id": fmt, "action": "resize", "width": 600, "format": fmt} for fmt in ("jpeg", "webp", "png")]
        process(data, decode_job_spec(msgspec.json.encode({"version": 1, "pipeline": outputs})))


def _run(
    process: Any, request: EngineRequest, config: SandboxConfig, stage: Any, hook: Callable[[str], object]
) -> _Reply:
    from pipeline.dsl import decode_job_spec

    stages: list[Stage] = []

    @contextlib.contextmanager
    def observe(name: str, attributes: dict[str, object]) -> Iterator[None]:
        start = time.time_ns()
        try:
            yield
        finally:
            stages.append(Stage(name, attributes, start, time.time_ns()))
        if name == "pipeline.decode":  # and it did not raise
            stage.value = _DECODED
            hook("decoded")

    try:
        spec = decode_job_spec(request.spec, request.limits)
        out = process(request.data, spec, limits=request.limits, assets=request.assets.__getitem__, observe=observe)
    except PipelineError as exc:
        if exc.detail and "out of memory" in exc.detail.lower():
            exc = _out_of_memory(config, detail=exc.detail)
        return _Reply(error=_Failure(exc.code, exc.public, exc.detail, stages))
    except MemoryError:
        oom = _out_of_memory(config)
        return _Reply(error=_Failure(oom.code, oom.public, None, stages))
    except Exception:
        err = InternalError("the image engine failed unexpectedly")
        return _Reply(error=_Failure(err.code, err.public, traceback.format_exc(), stages))
    s = out.source
    return _Reply(
        ok=EngineResult(
            SourceResult(s.format, s.width, s.height, s.pages, s.orientation, s.bytes),
            [
                VariantResult(v.id, v.format, v.content_type, v.width, v.height, v.data, v.quality, v.frames)
                for v in out.variants
            ],
            stages,
            out.details,
        )
    )


def _out_of_memory(config: SandboxConfig, detail: str | None = None) -> OutOfMemory:
    limit = config.memory_limit_bytes // 1024**2
    return OutOfMemory(f"processing needed more than the {limit} MB memory limit", detail=detail)


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads), alive or dead but not yet reaped."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15
    except (OSError, ValueError, IndexError):
        return 0.0


def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    """If the worker is SIGKILLed, its engines must not go on burning CPU as orphans."""
    try:
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def tune_malloc(vips_threads: int | None = None) -> None:
    """Few malloc arenas instead of 8 per core: libvips' worker threads otherwise fragment the heap
    into hundreds of MB that a long-lived process never returns. One when libvips runs one thread
    (a worker's engine): on bench.versus' 12 MP alpha PNG job, peak RSS 209 -> 180 MB at the same
    speed within its spread (docs/BENCHMARKS.md); two otherwise, so many threads do not queue on
    one lock (on 2 cores one arena was as fast at default threads too, but that is not many)."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().mallopt(-8, 1 if vips_threads == 1 else 2)  # M_ARENA_MAX


def _trim_if_large(threshold: int) -> None:
    """Hand freed heap back to the kernel after a big job, so the child is not recycled for
    memory it no longer uses. Not after every job: the next one would fault those pages back in
    (measured: +8 ms on a 100 ms job)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return
    if rss > threshold:
        with contextlib.suppress(OSError, AttributeError):
            _libc().malloc_trim(0)
