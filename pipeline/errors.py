"""Typed failures of the pipeline.

Every error has a stable machine-readable ``code`` (stored on failed jobs, sent in webhooks)
and a ``public`` message that is safe to show a client. Internal detail (libvips messages)
travels separately in ``detail`` for logs only.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

import msgspec

__all__ = [
    "AssetNotFound",
    "CannotMeetMaxBytes",
    "CorruptImage",
    "DeadlineExceeded",
    "EngineCrashed",
    "FieldError",
    "ImageError",
    "ImageTooLarge",
    "InternalError",
    "InvalidOperation",
    "OutOfMemory",
    "OutputTooLarge",
    "OverBudget",
    "PipelineError",
    "SpecError",
    "UnsupportedFormat",
    "member_path",
    "rebuild_error",
]


class PipelineError(Exception):
    code: ClassVar[str] = "pipeline_error"

    def __init__(self, public: str, *, detail: str | None = None) -> None:
        super().__init__(public)
        self.public = public
        self.detail = detail


class FieldError(msgspec.Struct, frozen=True):
    """One problem in a spec, located by a JSONPath-like ``path`` such as ``$.pipeline[2].steps[0].width``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def member_path(parent: str, key: str) -> str:
    """The path of an object's member, as every ``FieldError`` writes it: ``$.a.b`` for a plain
    key, ``$.a["any key"]`` (a JSON string) for the rest."""
    return f"{parent}.{key}" if _PLAIN_KEY.match(key) else f"{parent}[{json.dumps(key)}]"


class SpecError(PipelineError):
    code = "invalid_spec"

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid spec")

    @classmethod
    def at(cls, path: str, message: str) -> SpecError:
        return cls([FieldError(path, message)])


class ImageError(PipelineError):
    """The source image (or an asset) cannot be processed as asked."""

    code = "image_error"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class CorruptImage(ImageError):
    code = "corrupt_image"


class ImageTooLarge(ImageError):
    code = "image_too_large"


class OutputTooLarge(ImageError):
    code = "output_too_large"


class OverBudget(ImageError):
    """The planner estimates more work than the job's budget (``Limits.max_job_cost``)."""

    code = "over_budget"


class InvalidOperation(ImageError):
    """A step is valid on its own but impossible for this image (a crop box outside it, say)."""

    code = "invalid_operation"


class CannotMeetMaxBytes(ImageError):
    """A variant's ``max_bytes`` is smaller than its encoder's output even at the lowest quality."""

    code = "cannot_meet_max_bytes"


class AssetNotFound(ImageError):
    code = "asset_not_found"


class DeadlineExceeded(ImageError):
    code = "deadline_exceeded"


class OutOfMemory(ImageError):
    """The engine process passed its memory cap (a decompression bomb, or a spec too big for it)."""

    code = "out_of_memory"


class EngineCrashed(PipelineError):
    """The engine process died (a decoder fault, the kernel's OOM killer): not the client's spec."""

    code = "engine_crashed"


class InternalError(PipelineError):
    """A failure nobody anticipated: the detail goes to the logs under an incident id, never to the client."""

    code = "internal_error"


def _subclasses(cls: type[PipelineError]) -> list[type[PipelineError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def rebuild_error(code: str, public: str, detail: str | None) -> PipelineError:
    """The typed error for a ``code`` that crossed a process boundary as plain fields."""
    cls = next((c for c in _subclasses(PipelineError) if c.code == code), PipelineError)
    err = cls.__new__(cls)
    PipelineError.__init__(err, public, detail=detail)
    if isinstance(err, SpecError):
        err.errors = ()
    return err
