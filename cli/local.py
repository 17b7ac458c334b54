"""Subcommands that need no servers: ``run``, ``validate``, ``schema``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.inputs import outputs_or_refuse
from cli.output import Written, emit, emit_batch, json_option
from pipeline.dsl import JobSpec, Limits, asset_keys, decode_job_spec, encode_job_spec
from pipeline.errors import PipelineError, SpecError
from pipeline.formats import FORMATS

if TYPE_CHECKING:  # `run` imports these when it runs: every other command starts faster without them
    from pipeline.sandbox import Sandbox

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="process local images through a job spec, no servers needed")
    run.add_argument("spec", type=Path, help="job spec JSON file")
    run.add_argument(
        "inputs", type=Path, nargs="+", metavar="INPUT", help="source images, or directories to search for them"
    )
    run.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    run.add_argument(
        "--assets", type=Path, help="directory that watermark `image` keys resolve in (default: the spec's directory)"
    )
    run.add_argument("-j", "--jobs", type=int, default=0, help="worker processes (default: one per core)")
    json_option(run)
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="check a job spec and print it normalised")
    validate.add_argument("spec", type=Path)
    json_option(validate)
    validate.set_defaults(handler=cmd_validate)

    schema = sub.add_parser("schema", help="print the job spec's JSON Schema")
    schema.add_argument("--write", type=Path, metavar="DIR", help="write schemas/ files into DIR instead")
    json_option(schema)
    schema.set_defaults(handler=cmd_schema)


def _load_spec(path: Path, limits: Limits | None = None, *, as_json: bool = False) -> JobSpec | None:
    """The spec, or ``None`` once the reason is printed: one line on stderr, or for an invalid
    spec with ``as_json`` the document ``{"valid": false, "errors": [...]}`` on stdout."""
    try:
        return decode_job_spec(path.read_bytes(), limits or Limits())
    except OSError as exc:
        print(f"pixelflow: cannot read {path}: {exc.strerror}", file=sys.stderr)
    except SpecError as exc:
        if as_json:
            emit(True, {"valid": False, "errors": exc.errors})
        else:
            print(f"pixelflow: {path} is not a valid job spec:", file=sys.stderr)
            for err in exc.errors:
                print(f"  {err}", file=sys.stderr)
    return None


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec, as_json=args.json)
    if spec is None:
        return 2
    normal = json.loads(encode_job_spec(spec))
    emit(args.json, {"valid": True, "spec": normal}, json.dumps(normal, indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pipeline.dsl.schema import job_spec_schema, schema_files

    if args.write is None:
        emit(True, job_spec_schema())  # JSON either way: --json is accepted for uniformity
        return 0
    args.write.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_files().items():
        (args.write / name).write_text(text)
        written.append(str(args.write / name))
    emit(args.json, {"written": written}, (f"wrote {path}" for path in written))
    return 0


@dataclass(frozen=True)
class _Result:
    """One input's record in ``run --json`` (the shape of ``submit --json``'s, less the job)."""

    input: str
    seconds: float
    error: dict[str, str] | None = None  # {"code", "message"}
    written: tuple[Written, ...] = ()
    info: Any = None  # the source described, when the spec's `info` asks

    @classmethod
    def failed(cls, source: Path, started: float, code: str, message: str) -> _Result:
        return cls(str(source), _since(started), {"code": code, "message": message})


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _process_one(
    sandbox: Sandbox, spec: JobSpec, source: Path, target: Path, assets: Path | None, limits: Limits
) -> _Result:
    from pipeline.sandbox import EngineRequest

    started = time.perf_counter()
    try:
        data = source.read_bytes()
        request = EngineRequest(data, encode_job_spec(spec), limits, _read_assets(spec, assets))
        result = sandbox.run(request, timeout=limits.deadline_seconds)
    except PipelineError as exc:
        return _Result.failed(source, started, exc.code, exc.public)
    except OSError as exc:
        return _Result.failed(source, started, "unreadable", exc.strerror or str(exc))
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for v in result.variants:
        path = target / f"{v.id}{FORMATS[v.format].extension}"
        path.write_bytes(v.data)
        written.append(Written(v.id, str(path), v.format, v.width, v.height, v.bytes, v.quality, v.frames))
    return _Result(str(source), _since(started), written=tuple(written), info=result.details)


def _read_assets(spec: JobSpec, root: Path | None) -> dict[str, bytes]:
    """Watermark images the spec names, read from ``root`` (never outside it); a missing one is
    left out so the engine reports ``asset_not_found``."""
    if root is None:
        return {}
    base = root.resolve()
    found = {}
    for key in asset_keys(spec):
        path = (base / key).resolve()
        if path.is_relative_to(base) and path.is_file():
            found[key] = path.read_bytes()
    return found


def cmd_run(args: argparse.Namespace) -> int:
    import queue
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from infra.settings import SettingsError, load_settings
    from pipeline.sandbox import Sandbox, SandboxConfig

    try:
        limits = load_settings().limits  # the service's limits and deadline, from the same variables
    except SettingsError as exc:
        print(f"pixelflow: {exc}", file=sys.stderr)
        return 2
    spec = _load_spec(args.spec, limits)
    if spec is None:
        return 2
    assets = args.assets or args.spec.parent
    pairs = outputs_or_refuse(args.inputs)
    if pairs is None:
        return 2
    jobs = max(1, args.jobs or min(len(pairs), os.cpu_count() or 1))
    total = len(pairs)
    # Each image runs in a killable engine process, so the deadline holds inside any encoder.
    sandboxes: queue.SimpleQueue[Sandbox] = queue.SimpleQueue()
    config = SandboxConfig(vips_concurrency=None if jobs == 1 else 1)
    for _ in range(jobs):
        sandbox = Sandbox(config)
        sandbox.start()
        sandboxes.put(sandbox)

    def one(source: Path, folder: Path) -> _Result:
        sandbox = sandboxes.get()
        try:
            return _process_one(sandbox, spec, source, args.out / folder, assets, limits)
        finally:
            sandboxes.put(sandbox)

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            # the pairs of files alone (no URLs given): Path() only says so to the type checker
            futures = [pool.submit(one, Path(source), folder) for source, folder in pairs]
            for done, fut in enumerate(as_completed(futures), 1):
                _report(fut.result(), done, total, args.json)
    finally:
        while not sandboxes.empty():
            sandboxes.get().close()
    return 1 if emit_batch(args.json, [fut.result() for fut in futures]) else 0  # in the inputs' order


def _report(r: _Result, done: int, total: int, as_json: bool) -> None:
    """One input's lines as it finishes: failures on stderr; with ``--json`` the rest goes to
    stderr too, as progress, since stdout holds the one document printed at the end."""
    prefix = f"[{done}/{total}] " if total > 1 else ""
    if r.error is not None:
        print(f"{prefix}{r.input}: FAILED {r.error['code']}: {r.error['message']}", file=sys.stderr)
        return
    lines = [f"{prefix}{r.input} ({r.seconds:.2f} s)"]
    if not as_json:
        lines += [f"  {w.variant:<16} {w.path}  {w.format} {w.width}x{w.height} {w.bytes:,} bytes" for w in r.written]
    print("\n".join(lines), file=sys.stderr if as_json else sys.stdout)
