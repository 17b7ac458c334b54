"""Talking to a running service: the connection options every remote command shares, the one-line
reports of API and network failures, ``pixelflow jobs list|get|cancel`` and ``pixelflow usage``.

Built on the Python SDK (``clients/python``), imported when a remote command runs: the server
distribution does not depend on it, and ``pixelflow --help`` stays instant. Nothing here loads
libvips or Litestar.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cli.output import emit, json_option, usage_lines
from infra.settings import CLIENT_VARIABLES

__all__ = [
    "UsageError",
    "connection_options",
    "positive_int",
    "problem_lines",
    "register",
    "run_remote",
    "transport_line",
]

API_URL, API_KEY = CLIENT_VARIABLES
INSTALL_HINT = "pip install ./clients/python (from a PixelFlow checkout)"


def connection_options() -> argparse.ArgumentParser:
    """Options every remote command takes. The key is never a flag value: those land in shell
    history and in ``ps`` output for every user of the machine."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--api", metavar="URL", help=f"the API's base URL (default: ${API_URL})")
    common.add_argument(
        "--api-key-file", type=Path, metavar="FILE", help=f"read the API key from FILE (default: ${API_KEY})"
    )
    common.add_argument("--api-key", "--key", nargs="?", action=_RefuseKeyFlag, help=argparse.SUPPRESS)
    common.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per HTTP request (default 30)")
    json_option(common)
    return common


class _RefuseKeyFlag(argparse.Action):
    """``--api-key VALUE`` is refused with a pointer to the safe ways, without echoing the value."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: object, values: object, option: str | None = None
    ) -> None:
        parser.error(f"{option} is not accepted (the key would be left in shell history and ps output); "
                     f"set {API_KEY} or pass --api-key-file FILE")  # fmt: skip


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    jobs = sub.add_parser("jobs", help="list, inspect and cancel jobs on a running service")
    j_sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    listing = j_sub.add_parser("list", parents=[common], allow_abbrev=False, help="your jobs, newest first")
    listing.add_argument("--status", help="only jobs in this state (created, queued, processing, succeeded, ...)")
    listing.add_argument("--limit", type=positive_int, default=20, metavar="N", help="at most N jobs (default 20)")
    listing.set_defaults(handler=cmd_jobs_list)
    get = j_sub.add_parser(
        "get", parents=[common], allow_abbrev=False, help="one job: status, timings, error, variants"
    )
    get.add_argument("job_id", type=uuid.UUID, metavar="ID")
    get.set_defaults(handler=cmd_jobs_get)
    cancel = j_sub.add_parser("cancel", parents=[common], allow_abbrev=False, help="cancel a job that has not finished")
    cancel.add_argument("job_id", type=uuid.UUID, metavar="ID")
    cancel.set_defaults(handler=cmd_jobs_cancel)
    usage = sub.add_parser(
        "usage", parents=[common], allow_abbrev=False, help="your client's usage per UTC day (GET /v1/usage)"
    )
    usage.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day (default: 29 days before --to)")
    usage.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day, included (default: today, UTC)")
    usage.set_defaults(handler=cmd_usage)


def positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


class UsageError(Exception):
    """Exit 2: the command line or the environment is wrong, nothing was sent."""


def _endpoint(args: argparse.Namespace) -> tuple[str, str]:
    url = (args.api or os.environ.get(API_URL) or "").rstrip("/")
    if not url:
        raise UsageError(f"no API URL: pass --api URL or set {API_URL}")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the API URL must start with http:// or https:// (got {url!r})")
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read {args.api_key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get(API_KEY, "").strip()
    if not key:
        raise UsageError(f"no API key: set {API_KEY} or pass --api-key-file FILE")
    return url, key


def problem_lines(exc: Any) -> list[str]:
    """A problem+json answer as ``pixelflow: <title>: <detail>`` and one line per field error."""
    title = exc.title or f"HTTP {exc.status}"
    head = f"pixelflow: {title}: {exc.detail}" if exc.detail else f"pixelflow: {title} ({exc.code})"
    return [head] + [f"  {e.get('path', '$')}: {e.get('message', '')}" for e in exc.errors if isinstance(e, dict)]


def transport_line(exc: Any, timeout: float) -> str:
    """Refused, unresolvable or silent: one line naming the host (the API's, or storage's)."""
    import httpx

    try:
        url = exc.request.url
        where = f"{url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # raised before a request existed
        where = "the API"
    if isinstance(exc, httpx.TimeoutException):
        return f"pixelflow: no answer from {where} within {timeout:g} s"
    return f"pixelflow: cannot reach {where}: {_root_cause(exc)}"


def _root_cause(exc: BaseException) -> str:
    # httpx says "All connection attempts failed"; the socket error under it says why.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno) if seen.errno > 0 else str(seen.strerror or seen)
        seen = seen.__cause__ or seen.__context__
    reason = str(exc).strip() or type(exc).__name__
    return reason.split("] ", 1)[-1] if reason.startswith("[Errno") else reason


def run_remote(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    """Connect, run ``work(client)``, and turn every failure into one line: exit 2 for usage,
    1 for the API's refusals and for network failures; never a traceback."""
    try:
        url, key = _endpoint(args)
    except UsageError as exc:
        print(f"pixelflow: {exc}", file=sys.stderr)
        return 2
    try:
        import httpx
        from pixelflow_client import AsyncClient, PixelFlowError
    except ImportError:
        print(f"pixelflow: the remote commands need the pixelflow-client package: {INSTALL_HINT}", file=sys.stderr)
        return 1

    async def main() -> int:
        async with AsyncClient(url, key, timeout=httpx.Timeout(args.timeout)) as client:
            return await work(client)

    import asyncio  # imported when a command runs: `pixelflow --help` stays quick

    try:
        return asyncio.run(main())
    except UsageError as exc:
        print(f"pixelflow: {exc}", file=sys.stderr)
        return 2
    except PixelFlowError as exc:
        print("\n".join(problem_lines(exc)), file=sys.stderr)
    except httpx.TransportError as exc:
        print(transport_line(exc, args.timeout), file=sys.stderr)
    return 1


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def cmd_jobs_list(args: argparse.Namespace) -> int:
    async def work(pf: Any) -> int:
        found = []
        async for job in pf.iter_jobs(status=args.status, page_size=min(args.limit, 100)):
            found.append(job)
            if len(found) == args.limit:
                break
        if not found and not args.json:
            print("no jobs" + (f" {args.status}" if args.status else ""), file=sys.stderr)
        lines = (
            f"{j.id}  {j.status:<10}  {_when(j.created_at)}  {j.error.code if j.error else ''}".rstrip() for j in found
        )
        emit(args.json, {"jobs": found}, lines)
        return 0

    return run_remote(args, work)


def _describe(job: Any) -> list[str]:
    lines = [f"job       {job.id}", f"status    {job.status}"]
    if job.error:
        lines.append(f"error     {job.error.code}: {job.error.message}")
    lines.append(f"created   {_when(job.created_at)}")
    for label, when in (("queued", job.queued_at), ("started", job.started_at), ("finished", job.finished_at)):
        if when:
            lines.append(f"{label:<10}{_when(when)}")
    lines.append(f"attempts  {job.attempts}")
    if job.source and job.source.format:
        s = job.source
        lines.append(f"source    {s.format} {s.width}x{s.height} {s.bytes or 0:,} bytes")
    if job.metadata:
        lines.append(f"metadata  {json.dumps(job.metadata)}")
    if job.variants:
        lines.append("variants")
        lines += [f"  {v.id:<16} {v.format:<5} {v.width}x{v.height} {v.bytes:,} bytes" for v in job.variants]
    return lines


def cmd_jobs_get(args: argparse.Namespace) -> int:
    async def work(pf: Any) -> int:
        job = await pf.get(args.job_id)
        emit(args.json, job, _describe(job))
        return 0

    return run_remote(args, work)


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    async def work(pf: Any) -> int:
        job = await pf.cancel(args.job_id)
        emit(args.json, job, f"job {job.id}: {job.status}")
        return 0

    return run_remote(args, work)


def cmd_usage(args: argparse.Namespace) -> int:
    async def work(pf: Any) -> int:
        report = await pf.usage(args.start, args.end)
        emit(args.json, report, usage_lines("your client", report))
        return 0

    return run_remote(args, work)
