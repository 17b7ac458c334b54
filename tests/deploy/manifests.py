"""deploy/k8s as the tests see it: the production overlay's objects, rendered (tests/deploy/kustomize.py),
and lookups over them. No services needed."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.deploy.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
PRODUCTION = K8S / "overlays" / "production"
PRODUCTION_MIGRATE = PRODUCTION / "migrate"

Obj = dict[str, Any]


@cache
def _rendered(directory: Path) -> tuple[str, ...]:
    return tuple(json.dumps(o) for o in render(directory))


def objects(directory: Path = PRODUCTION) -> list[Obj]:
    """A fresh copy each call, so a test cannot change what the next one sees."""
    return [json.loads(o) for o in _rendered(directory)]


def production() -> list[Obj]:
    """Everything `kubectl apply -k` creates for production: the migration and the service."""
    return objects(PRODUCTION_MIGRATE) + objects(PRODUCTION)


def one(kind: str, name: str, items: list[Obj] | None = None) -> Obj:
    (found,) = [o for o in (items or production()) if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(o: Obj) -> Obj:
    return o["spec"]["template"]["spec"]


def workloads(items: list[Obj] | None = None) -> list[Obj]:
    return [o for o in (items or production()) if o["kind"] in ("Deployment", "Job")]


def config() -> dict[str, str]:
    return one("ConfigMap", "pixelflow-config")["data"]


def container_env(o: Obj, container: str | None = None) -> dict[str, str | None]:
    """The variables a workload's container gets: ConfigMap values resolved, secret ones as None."""
    spec = pod_spec(o)
    (c,) = [c for c in spec["containers"] if container in (None, c["name"])]
    env: dict[str, str | None] = {}
    for source in c.get("envFrom", []):
        env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in c.get("env", []):
        env[item["name"]] = item.get("value")
    return env


def dashboard() -> Obj:
    return json.loads((K8S / "base" / "dashboards" / "pixelflow.json").read_text())


def expressions() -> dict[str, str]:
    """Every PromQL expression shipped: alert name or dashboard panel title -> expr."""
    exprs = {}
    for group in one("PrometheusRule", "pixelflow")["spec"]["groups"]:
        for rule in group["rules"]:
            exprs[f"alert {rule['alert']}"] = rule["expr"]
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            exprs[f"panel {panel['title']} {target['refId']}"] = target["expr"]
    return exprs


_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series an expression reads: identifiers outside label matchers and groupings."""
    bare = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", bare)  # grouping labels
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # range selectors
    bare = re.sub(r'"[^"]*"', " ", bare)
    return {t for t in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare) if t not in _FUNCTIONS}
