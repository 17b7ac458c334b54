"""Where a batch of files stands, on stderr: on a terminal one bar redrawn in place, with result
lines printed above it; anywhere else (a pipe, a CI log) only the result lines, one per file."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 24


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.uploading = self.processing = self.done = self.failed = 0
        self._drawn = False

    def uploading_one(self) -> None:
        self.uploading += 1
        self._draw()

    def processing_one(self) -> None:
        self.uploading -= 1
        self.processing += 1
        self._draw()

    def finished_one(self, *, failed: bool, was: str) -> None:
        """A file is done; ``was`` is the stage it left (``uploading`` or ``processing``)."""
        setattr(self, was, getattr(self, was) - 1)
        self.done += 1
        self.failed += failed
        self._draw()

    def print(self, line: str, stream: TextIO | None = None) -> None:
        """A result line, above the bar (which is redrawn below it)."""
        self._clear()
        print(line, file=stream or self.stream, flush=True)
        self._draw()

    def close(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

    def _draw(self) -> None:
        if not self.tty:
            return
        filled = _WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        parts = [f"{self.uploading} uploading", f"{self.processing} processing"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        self.stream.write(f"\r\x1b[2K[{bar}] {self.done}/{self.total}  " + ", ".join(parts))
        self.stream.flush()
        self._drawn = True
