"""The signed image URL: ``/img/{sig}/{kid}/{option}/.../{source}``, split, verified and read
into a processing request (docs/delivery.md has the grammar). Errors in an option name it by its
place, ``$.url.options[i]`` (0 for the first option after the key id); the source is
``$.url.source``."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

import msgspec

from control_plane.problems import Forbidden, Unprocessable
from infra.signing import sign_path
from pipeline.dsl.decode import field_error
from pipeline.dsl.steps import Step
from pipeline.errors import FieldError

__all__ = [
    "ROUTE_PREFIX",
    "SOURCE_PATH",
    "Processing",
    "SignedPath",
    "SourceRef",
    "bad_option",
    "invalid_signature",
    "option_path",
    "parse_options",
    "parse_source",
    "signed_path",
    "split_path",
]

ROUTE_PREFIX = "/img"
SOURCE_PATH = "$.url.source"
_MAX_OPTIONS = 32
_INT = re.compile(r"^[0-9]{1,6}$")
_NUMBER = re.compile(r"^[0-9]{1,2}(\.[0-9]{1,3})?$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def option_path(index: int) -> str:
    return f"$.url.options[{index}]"


def invalid_signature() -> Forbidden:
    """One answer for a bad signature, an unknown key id, a retired key and a tampered path: no oracle."""
    return Forbidden("the URL's signature does not verify", code="invalid_signature")


def bad_option(index: int, message: str, code: str = "invalid_url") -> Unprocessable:
    return Unprocessable("the image URL is invalid", code=code, errors=[FieldError(option_path(index), message)])


@dataclass(frozen=True)
class SignedPath:
    signature: str
    kid: str
    signed: str  # what the signature covers: `/{kid}/{options...}/{source}`, as sent
    options: list[str]  # percent-decoded
    source: str  # as sent (its own encoding is the source kind's)


def split_path(raw_path: str) -> SignedPath:
    """``raw_path``: the request's path as sent (percent-encoding kept), from ``/img/``."""
    parts = raw_path.removeprefix(ROUTE_PREFIX + "/").split("/")
    if len(parts) < 3 or not all(parts):
        raise invalid_signature()
    signature, kid, *options, source = parts
    return SignedPath(signature, kid, "/" + "/".join(parts[1:]), [unquote(o) for o in options], source)


def signed_path(kid: str, secret: str, options: list[str], source: str) -> str:
    """``/img/{sig}/{kid}/{options...}/{source}``, each option percent-encoded where it must be
    (``source`` as given: ``job:<id>``, ``asset:<percent-encoded key>``). The dashboard's URL
    builder signs with this; the SDK has its own copy (clients/python/pixelflow_client/urls.py)."""
    path = "/" + "/".join([kid, *(quote(o, safe=":=@,.-_") for o in options), source])
    return f"{ROUTE_PREFIX}/{sign_path(secret, path)}{path}"


@dataclass(frozen=True)
class SourceRef:
    kind: Literal["job", "asset", "url"]
    id: str  # a job's id, an asset's key, a URL


def parse_source(text: str) -> SourceRef:
    kind, _, value = text.partition(":")
    if kind == "job":
        try:
            return SourceRef("job", str(uuid.UUID(value)))
        except ValueError:
            pass
    elif kind == "asset" and value:
        return SourceRef("asset", unquote(value))
    elif kind == "url" and value:
        try:
            url = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            url = ""
        if url:
            return SourceRef("url", url)
    raise Unprocessable(
        "the image URL is invalid",
        code="invalid_url",
        errors=[FieldError(SOURCE_PATH, "expected job:<id>, asset:<percent-encoded key> or url:<base64url of a URL>")],
    )


@dataclass
class Processing:
    """What a URL's options ask for, before it is a variant. Each value keeps the index of the
    option it came from, so the validator's errors can name that option."""

    template: tuple[str, str | None, int] | None = None  # reference (`name`, `name@3`), variant id, option
    parameters: dict[str, tuple[str, int]] = field(default_factory=dict)
    width: tuple[int, int] | None = None
    height: tuple[int, int] | None = None
    fit: tuple[str, int] | None = None
    format: tuple[str, int] | None = None  # None or `auto`: negotiated
    quality: tuple[int, int] | None = None
    dpr: tuple[float, int] | None = None
    steps: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    resize_at: int | None = None  # where in `steps` the w/h/fit/dpr resize goes (the first of them)


_SHORTHAND = {"w": "width", "h": "height", "q": "quality"}


def parse_options(options: list[str]) -> Processing:
    if len(options) > _MAX_OPTIONS:
        raise bad_option(_MAX_OPTIONS, f"at most {_MAX_OPTIONS} options")
    p = Processing()
    for i, option in enumerate(options):
        name, _, args = option.partition(":")
        if name == "t":
            if p.template is not None:
                raise bad_option(i, "one template per URL")
            ref, _, variant = args.partition(":")
            if not ref:
                raise bad_option(i, "expected t:NAME, t:NAME@VERSION or t:NAME@VERSION:VARIANT")
            p.template = (ref, variant or None, i)
        elif name == "p":
            key, sep, value = args.partition("=")
            if not sep or not _NAME.match(key):
                raise bad_option(i, "expected p:NAME=VALUE")
            p.parameters[key] = (value, i)
        elif name in _SHORTHAND:
            if not _INT.match(args) or int(args) < 1:
                raise bad_option(i, f"{_SHORTHAND[name]} must be a whole number from 1")
            setattr(p, _SHORTHAND[name], (int(args), i))
        elif name == "dpr":
            if not _NUMBER.match(args) or not 0 < float(args) <= 8:
                raise bad_option(i, "dpr must be a number above 0, at most 8")
            p.dpr = (float(args), i)
        elif name in ("fit", "f"):
            if not args:
                raise bad_option(i, f"expected {name}:VALUE")
            setattr(p, "fit" if name == "fit" else "format", (args, i))
        elif name == "s":
            p.steps.append((_step(args, i), i))
            continue
        else:
            raise bad_option(i, f"unknown option {name!r}: expected t, p, w, h, fit, f, q, dpr or s")
        if name in ("w", "h", "fit", "dpr") and p.resize_at is None:
            p.resize_at = len(p.steps)
    return p


def _step(args: str, index: int) -> dict[str, Any]:
    """``OP:k=v:k=v`` as a step, each value converted to its field's type by the step's struct."""
    op, *pairs = args.split(":")
    step: dict[str, Any] = {"op": op}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise bad_option(index, "expected s:OP:NAME=VALUE:NAME=VALUE")
        step[key] = value
    try:
        typed = msgspec.convert(step, Step, strict=False)  # "12" -> 12, "true" -> True, as the field says
    except msgspec.ValidationError as exc:
        error = field_error(exc, option_path(index))
        raise Unprocessable("the image URL is invalid", code="invalid_spec", errors=[error]) from None
    return msgspec.to_builtins(typed)
