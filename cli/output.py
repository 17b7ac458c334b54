"""What a command prints on stdout: text for a person, or with ``--json`` one JSON document for a
script, decided here for every command. Failures are never printed here: they are one line on
stderr, so stdout holds the document or nothing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["Written", "emit", "emit_batch", "json_option", "usage_lines"]


@dataclass(frozen=True)
class Written:
    """One output file a command wrote (``run`` and ``submit`` report the same records)."""

    variant: str
    path: str
    format: str
    width: int
    height: int
    bytes: int
    quality: int | None = None  # a lossy encoder's quality; with max_bytes, the highest that fit
    frames: int = 1  # an animated output's frames


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of text")


def emit(as_json: bool, doc: Any, text: str | Iterable[str] = ()) -> None:
    """``doc`` as one JSON document (dataclasses, msgspec structs, UUIDs and datetimes become JSON
    values), or the ``text`` lines; nothing when there are none."""
    if as_json:
        sys.stdout.write(json.dumps(msgspec.to_builtins(doc), indent=2) + "\n")
        return
    for line in [text] if isinstance(text, str) else text:
        print(line)


def emit_batch(as_json: bool, results: Sequence[Any]) -> int:
    """The end of ``run`` and ``submit`` (whose per-input lines were printed as each finished):
    with ``--json`` the one document, the counts and one record per input in the order given (a
    record whose ``error`` is not null failed); as text, a count line on stderr when there were
    several inputs. Returns how many failed."""
    total = len(results)
    failed = sum(r.error is not None for r in results)
    emit(as_json, {"total": total, "succeeded": total - failed, "failed": failed, "results": list(results)})
    if total > 1 and not as_json:
        print(f"{total - failed}/{total} images processed, {failed} failed", file=sys.stderr)
    return failed


def usage_lines(name: str, report: Any) -> list[str]:
    """A usage report (the server's ``UsageReport`` or the SDK's ``Usage``: the same fields) as a
    table, one line per day with usage, then the total: ``clients usage`` and ``usage`` print it."""
    header = f"{'day':<10} {'jobs':>6} {'ok':>6} {'failed':>6} {'deadline':>8} {'canceled':>8} {'source MP':>11}"
    header += f" {'output bytes':>14} {'CPU s':>9} {'webhooks':>9}"
    header += f" {'URL renders':>11} {'URL hits':>9} {'URL bytes':>14}"
    rows = [(d.day.isoformat(), d) for d in report.days] + [("total", report.total)]
    return [f"{name}: {report.start.isoformat()} to {report.end.isoformat()} (UTC days)", header] + [
        f"{label:<10} {u.jobs:>6,} {u.succeeded:>6,} {u.failed:>6,} {u.deadline_exceeded:>8,} {u.canceled:>8,}"
        f" {u.source_megapixels:>11,.2f} {u.output_bytes_total:>14,} {u.engine_cpu_seconds:>9,.1f}"
        f" {u.webhook_attempts:>9,} {u.url_renders:>11,} {u.url_cache_hits:>9,} {u.url_bytes_served:>14,}"
        for label, u in rows
    ]
