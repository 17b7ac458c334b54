"""Subcommands that need no servers: ``run``, ``validate``, ``schema``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError, SpecError
from pipeline.spec import JobSpec, Limits, decode_job_spec, encode_job_spec

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="process local images through a job spec, no servers needed")
    run.add_argument("spec", type=Path, help="job spec JSON file")
    run.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="source images")
    run.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    run.add_argument(
        "--assets", type=Path, help="directory that watermark `image` keys resolve in (default: the spec's directory)"
    )
    run.add_argument("-j", "--jobs", type=int, default=0, help="worker processes (default: one per core)")
    run.add_argument("--json", action="store_true", help="print one JSON object per input instead of text")
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="check a job spec and print it normalised")
    validate.add_argument("spec", type=Path)
    validate.set_defaults(handler=cmd_validate)

    schema = sub.add_parser("schema", help="print the job spec's JSON Schema")
    schema.add_argument("--write", type=Path, metavar="DIR", help="write schemas/ files into DIR instead")
    schema.set_defaults(handler=cmd_schema)


def _load_spec(path: Path) -> JobSpec | None:
    try:
        return decode_job_spec(path.read_bytes(), Limits())
    except OSError as exc:
        print(f"pixelflow: cannot read {path}: {exc.strerror}", file=sys.stderr)
    except SpecError as exc:
        print(f"pixelflow: {path} is not a valid job spec:", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
    return None


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    if spec is None:
        return 2
    sys.stdout.write(json.dumps(json.loads(encode_job_spec(spec)), indent=2) + "\n")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pipeline.spec.schema import job_spec_schema, schema_files

    if args.write is None:
        sys.stdout.write(json.dumps(job_spec_schema(), indent=2) + "\n")
        return 0
    args.write.mkdir(parents=True, exist_ok=True)
    for name, text in schema_files().items():
        (args.write / name).write_text(text)
        print(f"wrote {args.write / name}")
    return 0


@dataclass(frozen=True)
class _Written:
    variant: str
    path: str
    format: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class _Result:
    input: str
    seconds: float
    written: tuple[_Written, ...] = ()
    error_code: str | None = None
    error: str | None = None


def _process_one(spec_bytes: bytes, source: Path, out_dir: Path, assets: Path | None) -> _Result:
    from pipeline.encode import EXTENSIONS
    from pipeline.engine import process

    started = time.perf_counter()
    try:
        spec = decode_job_spec(spec_bytes)
        data = source.read_bytes()
        result = process(data, spec, assets=_asset_resolver(assets))
    except PipelineError as exc:
        return _Result(str(source), time.perf_counter() - started, error_code=exc.code, error=exc.public)
    except OSError as exc:
        return _Result(str(source), time.perf_counter() - started, error_code="unreadable", error=exc.strerror)
    target = out_dir / source.stem
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for v in result.variants:
        path = target / f"{v.id}{EXTENSIONS[v.format]}"
        path.write_bytes(v.data)
        written.append(_Written(v.id, str(path), v.format, v.width, v.height, v.bytes))
    return _Result(str(source), time.perf_counter() - started, tuple(written))


def _asset_resolver(root: Path | None) -> Callable[[str], bytes] | None:
    if root is None:
        return None
    base = root.resolve()

    def resolve(key: str) -> bytes:
        path = (base / key).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise KeyError(key)
        return path.read_bytes()

    return resolve


def cmd_run(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    if spec is None:
        return 2
    spec_bytes = encode_job_spec(spec)  # the normalised form travels to the worker processes
    assets = args.assets or args.spec.parent
    jobs = args.jobs or min(len(args.inputs), os.cpu_count() or 1)
    total, failed = len(args.inputs), 0
    results: list[_Result] = []
    if jobs <= 1:
        for source in args.inputs:
            results.append(_process_one(spec_bytes, source, args.out, assets))
            failed += _report(results[-1], len(results), total, args.json)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_process_one, spec_bytes, s, args.out, assets) for s in args.inputs]
            for done, fut in enumerate(as_completed(futures), 1):
                results.append(fut.result())
                failed += _report(results[-1], done, total, args.json)
    if total > 1 and not args.json:
        print(f"{total - failed}/{total} images processed, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _report(r: _Result, done: int, total: int, as_json: bool) -> int:
    if as_json:
        record = {k: v for k, v in r.__dict__.items() if k != "written"}
        print(json.dumps(record | {"written": [w.__dict__ for w in r.written]}))
        return int(r.error is not None)
    prefix = f"[{done}/{total}] " if total > 1 else ""
    if r.error is not None:
        print(f"{prefix}{r.input}: FAILED {r.error_code}: {r.error}", file=sys.stderr)
        return 1
    print(f"{prefix}{r.input} ({r.seconds:.2f} s)")
    for w in r.written:
        print(f"  {w.variant:<16} {w.path}  {w.format} {w.width}x{w.height} {w.bytes:,} bytes")
    return 0
