"""JSON request bodies with a bounded nesting depth.

msgspec decodes recursively: a body of a few kilobytes of ``[[[[...`` reaches Python's recursion
limit and raises ``RecursionError`` (a 500). No PixelFlow document nests deeper than a handful of
levels (a spec is 5 deep; metadata holds scalars only), so anything deeper than ``MAX_DEPTH`` is
refused with a 400 before msgspec sees it. The scan is linear and runs in C (regex, translate,
accumulate) over a body already capped by ``PIXELFLOW_MAX_REQUEST_BODY_BYTES``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.serialization import decode_json
from litestar.types import Empty

from control_plane.problems import ApiError

__all__ = ["MAX_DEPTH", "BoundedJsonRequest", "JsonTooDeep", "check_depth", "decode_bounded"]

MAX_DEPTH = 64

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)  # brackets inside strings do not nest
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonTooDeep(ApiError):
    status, code, title = 400, "json_too_deep", "JSON nested too deeply"


def check_depth(raw: bytes | str, limit: int = MAX_DEPTH) -> None:
    data = raw.encode() if isinstance(raw, str) else raw
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    if len(brackets) > limit and max(itertools.accumulate(map(_STEP.__getitem__, brackets))) > limit:
        raise JsonTooDeep(f"JSON may nest at most {limit} levels deep")


def decode_bounded(raw: bytes | str) -> Any:
    """``msgspec.json.decode`` behind the depth check (raises ``msgspec.DecodeError`` as usual)."""
    check_depth(raw)
    return msgspec.json.decode(raw)


class BoundedJsonRequest(Request):
    """Litestar parses every JSON body through ``Request.json()``; the check goes in front of it."""

    async def json(self) -> Any:
        if self._json is Empty and self._connection_state.json is Empty:
            body = await self.body()
            check_depth(body)
            self._json = self._connection_state.json = decode_json(
                body or b"null", type_decoders=self.route_handler.resolve_type_decoders()
            )
        return await super().json()
