"""JSON request bodies with a bounded nesting depth.

msgspec decodes recursively: a body of a few kilobytes of ``[[[[...`` reaches Python's recursion
limit and raises ``RecursionError`` (a 500). No PixelFlow document nests deeper than a handful of
levels (a spec is 5 deep; metadata holds scalars only), so anything deeper than ``MAX_DEPTH`` is
refused with a 400 before msgspec sees it. The scan is linear and runs in C (regex, translate,
accumulate) over a body already capped by ``PIXELFLOW_MAX_REQUEST_BODY_BYTES``.

Text that is not UTF-8 (raw bytes such as 0xff, or an escaped unpaired surrogate ``"\\ud800"``)
cannot be stored by PostgreSQL nor read by msgspec, which raises ``UnicodeDecodeError`` (a 500) or
a bare "truncated" error. Such a body is refused with a 400 naming the member that holds it.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException
from litestar.serialization import decode_json
from litestar.types import Empty

from control_plane.problems import ApiError
from pipeline.errors import FieldError, member_path

__all__ = [
    "MAX_DEPTH",
    "BoundedJsonRequest",
    "JsonNotUtf8",
    "JsonTooDeep",
    "check_depth",
    "check_text",
    "decode_bounded",
]

MAX_DEPTH = 64

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)  # brackets inside strings do not nest
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonTooDeep(ApiError):
    status, code, title = 400, "json_too_deep", "JSON nested too deeply"


class JsonNotUtf8(ApiError):
    status, code, title = 400, "invalid_utf8", "Text is not valid UTF-8"


# What 'surrogateescape' makes of a byte that is not UTF-8, and what an escaped unpaired surrogate decodes to
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_UTF8 = "not valid UTF-8 (a byte that is not UTF-8, or an unpaired surrogate escape such as \\ud800)"


def _not_text(value: Any, path: str) -> FieldError | None:
    if isinstance(value, str):
        return FieldError(path, _NOT_UTF8) if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, member in value.items():
            if _SURROGATE.search(key):  # the key cannot be written in a path: name its object
                return FieldError(path, "a key is " + _NOT_UTF8)
            if found := _not_text(member, member_path(path, key)):
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if found := _not_text(item, f"{path}[{i}]"):
                return found
    return None


def check_text(raw: bytes | str, error: Exception) -> None:
    """After msgspec refused ``raw`` with ``error``: a 400 naming the first member whose text is not
    UTF-8 when that is the cause (Python's json reads what msgspec will not, on this error path
    only). Otherwise msgspec's own error stands, except a bare ``UnicodeDecodeError``."""
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    try:
        found = _not_text(json.loads(text), "$")
    except (ValueError, RecursionError):
        found = None
    if found is None and isinstance(error, UnicodeDecodeError):
        found = FieldError("$", _NOT_UTF8)
    if found is not None:
        raise JsonNotUtf8("the request holds text that is not valid UTF-8", errors=[found]) from None


def check_depth(raw: bytes | str, limit: int = MAX_DEPTH) -> None:
    data = raw.encode() if isinstance(raw, str) else raw
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    if len(brackets) > limit and max(itertools.accumulate(map(_STEP.__getitem__, brackets))) > limit:
        raise JsonTooDeep(f"JSON may nest at most {limit} levels deep")


def decode_bounded(raw: bytes | str) -> Any:
    """``msgspec.json.decode`` behind the depth check (raises ``msgspec.DecodeError`` as usual,
    ``JsonNotUtf8`` for text that is not UTF-8)."""
    check_depth(raw)
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        check_text(raw, exc)
        raise


class BoundedJsonRequest(Request):
    """Litestar parses every JSON body through ``Request.json()``; the check goes in front of it."""

    async def json(self) -> Any:
        if self._json is Empty and self._connection_state.json is Empty:
            body = await self.body()
            check_depth(body)
            try:
                self._json = self._connection_state.json = decode_json(
                    body or b"null", type_decoders=self.route_handler.resolve_type_decoders()
                )
            except (SerializationException, UnicodeDecodeError) as exc:
                check_text(body, exc)
                raise
        return await super().json()
