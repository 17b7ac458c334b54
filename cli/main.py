"""``pixelflow`` entry point. Subcommands import what they need when they run, so ``validate`` and
``schema`` never load libvips and ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import local, servers

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelflow", description="Declarative image pipelines.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local.register(sub)
    servers.register(sub)
    return parser


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
