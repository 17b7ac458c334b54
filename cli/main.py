"""``pixelflow`` entry point. Subcommands import what they need when they run, so ``validate``,
``schema``, ``submit`` and ``jobs`` never load libvips (nor Litestar) and ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import local, operations, remote, submit, users

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelflow", description="Declarative image pipelines.")
    parser.add_argument("--version", action="version", version=f"pixelflow {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local.register(sub)
    operations.register(sub)
    users.register(sub)
    common = remote.connection_options()
    submit.register(sub, common)
    remote.register(sub, common)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pixelflow")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
