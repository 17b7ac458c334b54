"""The subset of kustomize that deploy/k8s uses, rendered in Python (no kubectl here), so tests can
check the objects `kubectl apply -k` would create.

Supported: ``resources`` (files and directories holding a kustomization), ``namespace``,
``labels`` (``pairs`` with ``includeSelectors: false``), ``images`` (``newName``/``newTag``),
``patches`` (inline strategic-merge patches with a ``target`` kind and name) and
``configMapGenerator`` (``files`` with ``disableNameSuffixHash``). Anything else raises
``Unsupported``, so a manifest change this renderer cannot follow fails the tests instead of
being silently ignored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Unsupported", "render"]

Obj = dict[str, Any]

_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches", "configMapGenerator"}
# kind -> the keys of the lists whose items strategic merge joins by `name` (as kubectl does)
_MERGE_BY_NAME = {"containers", "initContainers", "env", "ports", "volumes", "volumeMounts"}


class Unsupported(ValueError):
    pass


def render(directory: Path) -> list[Obj]:
    """The objects of the kustomization in ``directory``, transformed as kustomize would."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - _KEYS
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {sorted(unknown)}")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            objects += [o for o in yaml.safe_load_all(path.read_text()) if o]
    for generator in spec.get("configMapGenerator", []):
        objects.append(_config_map(directory, generator))
    for patch in spec.get("patches", []):
        _patch(objects, patch)
    if "namespace" in spec:
        for o in objects:
            o["metadata"]["namespace"] = spec["namespace"]
    for labels in spec.get("labels", []):
        if (
            labels.get("includeSelectors")
            or labels.get("includeTemplates")
            or set(labels)
            - {
                "pairs",
                "includeSelectors",
            }
        ):
            raise Unsupported(f"{directory}: labels {labels}")
        for o in objects:
            o["metadata"].setdefault("labels", {}).update(labels["pairs"])
    for image in spec.get("images", []):
        for o in objects:
            for container in _containers(o):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return objects


def _config_map(directory: Path, generator: Obj) -> Obj:
    options = generator.get("options", {})
    if not options.get("disableNameSuffixHash") or set(generator) - {"name", "files", "options"}:
        raise Unsupported(f"configMapGenerator {generator['name']}: only files without a name hash")
    data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
    metadata: Obj = {"name": generator["name"]}
    if "labels" in options:
        metadata["labels"] = dict(options["labels"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _patch(objects: list[Obj], patch: Obj) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise Unsupported(f"patch {patch}: only inline strategic merge with a kind/name target")
    target = patch["target"]
    matches = [
        o
        for o in objects
        if o["kind"] == target["kind"] and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])
    ]
    if not matches:
        raise Unsupported(f"patch target {target} matches nothing")
    body = yaml.safe_load(patch["patch"])
    for o in matches:
        merged = _merge(o, body)
        o.clear()
        o.update(merged)


def _merge(base: Any, patch: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if isinstance(v, dict) and "$patch" in v:
                raise Unsupported("$patch directives")
            out[k] = _merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in _MERGE_BY_NAME:
        out = copy.deepcopy(base)
        by_name = {item["name"]: i for i, item in enumerate(out)}
        for item in patch:
            if item["name"] in by_name:
                out[by_name[item["name"]]] = _merge(out[by_name[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _containers(o: Obj) -> list[Obj]:
    spec = o.get("spec", {})
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get(
        "spec", {}
    )
    return [*pod.get("containers", []), *pod.get("initContainers", [])]
