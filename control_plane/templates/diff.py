"""What changed between two versions of a template: a flat list of changes, JSON-Patch-like, each
located by the same path notation the validator's errors use (``$.spec.pipeline[1].steps[0].width``,
``$.parameters.caption.default``), so a client can show a diff next to the errors it already shows.
Lists compare by position (a variant inserted in the middle shows as changes to those after it),
which is what a reader of the stored JSON sees."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from infra.repo import TemplateVersion

__all__ = ["Change", "TemplateDiff", "diff_versions"]


class Change(msgspec.Struct):
    op: Literal["add", "remove", "replace"]
    path: str
    before: Any = None  # the older version's value (null for `add`)
    after: Any = None  # the newer version's value (null for `remove`)


class TemplateDiff(msgspec.Struct):
    name: str
    from_version: int
    to_version: int
    changes: list[Change]  # in document order; empty when the versions say the same


def diff_versions(name: str, old: TemplateVersion, new: TemplateVersion) -> TemplateDiff:
    changes: list[Change] = []
    _diff(
        {"spec": old.spec, "parameters": old.parameters}, {"spec": new.spec, "parameters": new.parameters}, "$", changes
    )
    return TemplateDiff(name, old.version, new.version, changes)


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                out.append(Change("remove", f"{path}.{key}", before=old[key]))
            else:
                _diff(old[key], new[key], f"{path}.{key}", out)
        out.extend(Change("add", f"{path}.{key}", after=new[key]) for key in new if key not in old)
    elif isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            _diff(a, b, f"{path}[{i}]", out)
        out.extend(Change("remove", f"{path}[{i}]", before=old[i]) for i in range(len(new), len(old)))
        out.extend(Change("add", f"{path}[{i}]", after=new[i]) for i in range(len(old), len(new)))
    elif type(old) is not type(new) or old != new:  # 1 and 1.0, or 1 and true, are different values in a spec
        out.append(Change("replace", path, before=old, after=new))
