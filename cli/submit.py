"""``pixelflow submit SPEC FILE|DIR... [--url URL]... -o OUT``: ``pixelflow run``, but on a running service.

Each file becomes one job (create, upload straight to storage, start, wait), and each ``--url``
one job whose original the service fetches (create, wait), at most
``--concurrency`` at a time, and every variant is downloaded under ``-o`` with ``run``'s layout.
Everything that can be refused without processing is refused before the first upload: outputs
that would overwrite each other, a spec the API rejects, a watermark image that is not there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mimetypes
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.inputs import outputs_or_refuse
from cli.output import Written, emit_batch
from cli.progress import Progress
from cli.remote import UsageError, positive_int, problem_lines, run_remote, transport_line
from pipeline.formats import FORMATS

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    submit = sub.add_parser(
        "submit",
        parents=[common],
        allow_abbrev=False,
        help="process images on a running service and download every variant",
    )
    submit.add_argument("spec", type=Path, help="job spec JSON file")
    submit.add_argument(
        "inputs", type=Path, nargs="*", metavar="FILE|DIR", help="source images, or directories to search for them"
    )
    submit.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="URL",
        help="an image the service fetches itself (repeat for several); its outputs go to <file name's stem>/",
    )
    submit.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    submit.add_argument(
        "-j", "--concurrency", type=positive_int, default=4, metavar="N", help="files in flight at once (default 4)"
    )
    submit.add_argument(
        "--assets", type=Path, metavar="DIR", help="upload the watermark images the spec names from DIR first"
    )
    submit.add_argument(
        "--job-timeout", type=float, default=600.0, metavar="SECONDS", help="give up waiting for a job (default 600)"
    )
    submit.set_defaults(handler=cmd_submit)


@dataclass
class _Outcome:
    input: str
    job_id: str | None = None
    status: str | None = None  # the job's last known state; None: no job was created
    seconds: float = 0.0
    error: dict[str, str] | None = None  # {"code", "message"}
    written: list[Written] = field(default_factory=list)
    info: Any = None  # the source described, when the spec's `info` asks

    def fail(self, code: str, message: str) -> _Outcome:
        self.error = {"code": code, "message": message}
        return self


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise UsageError(f"{path} is not a job spec (a JSON object)")
    return spec


def _watermark_images(normal_spec: dict[str, Any]) -> set[str]:
    """Asset keys in the API's normalised spec (the compact form is expanded there)."""
    return {
        step["image"]
        for variant in normal_spec.get("pipeline", [])
        for step in variant.get("steps", [])
        if step.get("op") == "watermark" and step.get("image")
    }


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        spec = _read_spec(args.spec)
    except UsageError as exc:
        print(f"pixelflow: {exc}", file=sys.stderr)
        return 2
    if not args.inputs and not args.url:
        print("pixelflow: give image files, directories or --url", file=sys.stderr)
        return 2
    pairs = outputs_or_refuse(args.inputs, args.url)
    if pairs is None:
        return 2

    async def work(pf: Any) -> int:
        check = await pf.validate(spec)  # one refusal for the spec, not one per file
        if not check.valid:
            print(f"pixelflow: every job with {args.spec} would fail:", file=sys.stderr)
            for e in check.errors or []:
                print(f"  {e['path']}: {e['code']}: {e['message']}", file=sys.stderr)
            return 1
        if args.assets is not None:
            await _upload_assets(pf, args.assets, _watermark_images(check.spec))
        return await _run(pf, args, spec, pairs)

    return run_remote(args, work)


async def _upload_assets(pf: Any, root: Path, keys: set[str]) -> None:
    base = root.resolve()
    for key in sorted(keys):
        path = (base / key).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise UsageError(f"the spec's watermark image {key!r} is not in {root}")
    for key in sorted(keys):
        await pf.upload_asset(key, base / key, content_type=mimetypes.guess_type(key)[0] or "application/octet-stream")


async def _run(pf: Any, args: argparse.Namespace, spec: dict[str, Any], pairs: list[tuple[Path | str, Path]]) -> int:
    import asyncio  # here, not at the top: every `pixelflow` command imports this module

    progress = Progress(len(pairs))
    slots = asyncio.Semaphore(args.concurrency)
    run_id = uuid.uuid4().hex[:12]

    async def one(index: int, source: Path | str, folder: Path) -> _Outcome:
        # An idempotency key makes `create` safe to resend after a 429 (the SDK waits for Retry-After).
        async with slots:
            outcome = await _one(pf, args, spec, source, args.out / folder, f"pixelflow-cli-{run_id}-{index}", progress)
        _report(progress, outcome, args.json)
        return outcome

    try:
        outcomes = await asyncio.gather(*(one(i, s, f) for i, (s, f) in enumerate(pairs)))
    finally:
        progress.close()
    return 1 if emit_batch(args.json, outcomes) else 0


async def _one(
    pf: Any,
    args: argparse.Namespace,
    spec: dict[str, Any],
    source: Path | str,
    target: Path,
    key: str,
    progress: Progress,
) -> _Outcome:
    import httpx
    from pixelflow_client import PixelFlowError

    outcome = _Outcome(str(source))
    started = time.monotonic()
    stage = "uploading"
    progress.uploading_one()
    try:
        if isinstance(source, str):  # --url: the service fetches it; the job is queued when created
            job = await pf.create({**spec, "source": {"url": source}}, idempotency_key=key)
            outcome.job_id, outcome.status = str(job.id), job.status
        else:
            data = source.read_bytes()
            job = await pf.create(spec, idempotency_key=key)
            outcome.job_id, outcome.status = str(job.id), job.status
            if job.upload is not None and len(data) > job.upload.max_bytes:
                await pf.cancel(job.id)
                outcome.status = "canceled"
                return outcome.fail(
                    "source_too_large", f"{len(data):,} bytes; the service takes at most {job.upload.max_bytes:,}"
                )
            await pf.upload(job, data, content_type=mimetypes.guess_type(source.name)[0] or "application/octet-stream")
            outcome.status = (await pf.start(job.id)).status
        stage = "processing"
        progress.processing_one()
        final = await pf.wait(job.id, timeout=args.job_timeout)
        outcome.status = final.status
        if final.status != "succeeded":
            return (
                outcome.fail(final.error.code, final.error.message) if final.error else outcome.fail(final.status, "")
            )
        target.mkdir(parents=True, exist_ok=True)
        for v in final.variants:
            known = FORMATS.get(v.format)  # a newer server may write a format this client does not know
            path = await pf.download(v, target / f"{v.id}{known.extension if known else '.' + v.format}")
            outcome.written.append(Written(v.id, str(path), v.format, v.width, v.height, v.bytes, v.quality, v.frames))
        outcome.info = final.info
        return outcome
    except OSError as exc:
        return outcome.fail("unreadable", f"{exc.strerror or exc}")
    except PixelFlowError as exc:
        if outcome.job_id is not None:  # a refused start may have ended the job: report where it is now
            with contextlib.suppress(PixelFlowError, httpx.TransportError):
                outcome.status = (await pf.get(outcome.job_id)).status
        return outcome.fail(exc.code, " ".join(line.strip() for line in problem_lines(exc)).removeprefix("pixelflow: "))
    except httpx.TransportError as exc:
        return outcome.fail("unreachable", transport_line(exc, args.timeout).removeprefix("pixelflow: "))
    except TimeoutError:
        return outcome.fail("timeout", f"still {outcome.status} after {args.job_timeout:g} s")
    finally:
        outcome.seconds = round(time.monotonic() - started, 3)
        progress.finished_one(failed=outcome.error is not None, was=stage)


def _report(progress: Progress, o: _Outcome, as_json: bool) -> None:
    prefix = f"[{progress.done}/{progress.total}] " if progress.total > 1 else ""
    if o.error is not None:
        job = f"job {o.job_id}, {o.status}" if o.job_id else "no job created"
        reason = f"{o.error['code']}: {o.error['message']}".rstrip(": ")
        progress.print(f"{prefix}{o.input}: FAILED {reason} ({job})", sys.stderr)
        return
    done = f"{prefix}{o.input}: job {o.job_id} succeeded ({o.seconds:.2f} s)"
    if as_json:  # stdout holds the JSON document alone
        progress.print(done, sys.stderr)
        return
    lines = [done] + [
        f"  {w.variant:<16} {w.path}  {w.format} {w.width}x{w.height} {w.bytes:,} bytes" for w in o.written
    ]
    progress.print("\n".join(lines), sys.stdout)
