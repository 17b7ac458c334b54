"""Output key templates: where a client's variants go under ``outputs/`` (``infra/objects.py``
holds the rest of the layout). A template names placeholders from a fixed set; this module is the
one that checks it, for the settings, the client policy and the CLI alike. It imports nothing of
storage, so the settings can check a template without loading a storage client."""

from __future__ import annotations

import re
import string
import uuid

__all__ = ["DEFAULT_OUTPUT_KEY_TEMPLATE", "OUTPUT_KEY_PLACEHOLDERS", "check_output_key_template", "render_output_key"]

# What an output key template may name. `job` and `variant` are required: together they make the
# key unique (a job id is a UUID of fixed length), so no two variants ever share an object.
OUTPUT_KEY_PLACEHOLDERS = frozenset({"client", "job", "variant", "ext"})
DEFAULT_OUTPUT_KEY_TEMPLATE = "{client}/{job}/{variant}.{ext}"
_REQUIRED = ("job", "variant")
_LITERAL = re.compile(r"[A-Za-z0-9/_.-]*")  # S3's safe characters, less the ones URLs must escape
_MAX_TEMPLATE = 200


def check_output_key_template(template: str) -> str:
    """The template if it is one PixelFlow can use, else ValueError saying why. Placeholders are
    ``{client}``, ``{job}``, ``{variant}``, ``{ext}`` (no format specs); the literal text is
    letters, digits, ``/``, ``_``, ``.``, ``-``, with no ``..``, no empty or ``.`` segment and no
    leading or trailing ``/``: the key stays under ``outputs/``, plain in a URL."""
    if not template or len(template) > _MAX_TEMPLATE:
        raise ValueError(f"an output key template has 1-{_MAX_TEMPLATE} characters")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"output key template {template!r}: {exc}") from None
    named: set[str] = set()
    for literal, name, spec, conversion in parts:
        if not _LITERAL.fullmatch(literal):
            raise ValueError(f"output key template {template!r}: only letters, digits, '/', '_', '.', '-' outside {{}}")
        if name is None:
            continue
        if name not in OUTPUT_KEY_PLACEHOLDERS or spec or conversion:
            known = ", ".join(f"{{{p}}}" for p in sorted(OUTPUT_KEY_PLACEHOLDERS))
            raise ValueError(f"output key template {template!r}: unknown placeholder {{{name}}} (known: {known})")
        named.add(name)
    missing = [f"{{{p}}}" for p in _REQUIRED if p not in named]
    if missing:
        raise ValueError(f"output key template {template!r} must contain {' and '.join(missing)} (keys must be unique)")
    sample = render_output_key(template, uuid.UUID(int=0), uuid.UUID(int=0), "v", "jpg")
    if ".." in template or any(seg in ("", ".") for seg in sample.split("/")):
        raise ValueError(
            f"output key template {template!r}: no '..', empty or '.' path segments, leading or trailing '/'"
        )
    return template


def render_output_key(template: str, client_id: uuid.UUID, job_id: uuid.UUID, variant_id: str, ext: str) -> str:
    """The template filled in; ``infra.objects.output_key`` puts it under ``outputs/``."""
    return template.format(client=client_id, job=job_id, variant=variant_id, ext=ext)
