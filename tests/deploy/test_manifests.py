"""deploy/k8s, statically: every object valid against the schemas of the pinned Kubernetes versions
(kubernetes-validate, strict) or the vendored KEDA / Prometheus operator CRD schemas
(tests/deploy/crds), and the production overlay's effective objects consistent with the settings
and measurements they cite."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import msgspec
import pytest
import yaml

from data_plane.worker import HANDBACK_SECONDS
from infra.settings import PREFIX, Settings, load_settings
from tests.deploy.kustomize import Unsupported, render
from tests.deploy.manifests import (
    K8S,
    PRODUCTION,
    PRODUCTION_MIGRATE,
    config,
    container_env,
    dashboard,
    objects,
    one,
    pod_spec,
    production,
    workloads,
)

# The oldest Kubernetes minor still in upstream support when this was written, and the newest
# kubernetes-validate 1.37 ships schemas for. Every manifest must be valid on both.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
CRDS = Path(__file__).parent / "crds"
SETTINGS = {PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings)}
# Settings whose values are credentials: they may only come from a Secret.
SECRET_SETTINGS = {"PIXELFLOW_DATABASE_URL", "PIXELFLOW_REDIS_URL", "PIXELFLOW_S3_ACCESS_KEY", "PIXELFLOW_S3_SECRET_KEY",
                   "PIXELFLOW_URL_SIGNING_SECRET", "PIXELFLOW_METRICS_TOKEN"}  # fmt: skip


def _strict(schema: Any) -> Any:
    """Unknown fields are errors (the API server would prune them silently). Patterns are Go
    regular expressions, whose ``(?i)`` may stand anywhere; Python's must lead."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if isinstance(out.get("pattern"), str) and "(?i)" in out["pattern"]:
            out["pattern"] = "(?i)" + out["pattern"].replace("(?i)", "")
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        schemas[(f"{doc['group']}/{doc['version']}", doc["kind"])] = _strict(doc["openAPIV3Schema"])
    return schemas


CUSTOM = _crd_schemas()
EVERY_RENDERING = {
    "base": K8S / "base",
    "migrate": K8S / "migrate",
    "production": PRODUCTION,
    "production/migrate": PRODUCTION_MIGRATE,
}


@pytest.mark.parametrize("name", sorted(EVERY_RENDERING))
def test_every_object_is_valid_for_its_schema(name: str) -> None:
    items = objects(EVERY_RENDERING[name])
    assert items
    for o in items:
        what = f"{o['kind']}/{o['metadata']['name']}"
        key = (o["apiVersion"], o["kind"])
        if key in CUSTOM:
            jsonschema.validate(o, CUSTOM[key])
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(copy.deepcopy(o), version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{what} on Kubernetes {version}: {exc.message} at {list(exc.path)}")


def test_the_schemas_refuse_what_they_should() -> None:
    """The validation above can fail: a misspelt field and a wrong type are caught for core and custom objects."""
    deployment = copy.deepcopy(one("Deployment", "pixelflow-worker"))
    pod_spec(deployment)["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(one("ScaledObject", "pixelflow-worker"))
    scaled["spec"]["minReplicas"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, CUSTOM[("keda.sh/v1alpha1", "ScaledObject")])
    rule = copy.deepcopy(one("PrometheusRule", "pixelflow"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, CUSTOM[("monitoring.coreos.com/v1", "PrometheusRule")])


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(Unsupported):
        render(tmp_path)


def test_every_pixelflow_variable_is_a_real_setting_and_valid() -> None:
    for o in workloads():
        env = container_env(o)
        names = {n for n in env if n.startswith(PREFIX)}
        assert names <= SETTINGS, f"{o['metadata']['name']}: not settings: {sorted(names - SETTINGS)}"
        # the values written in the manifests pass the service's own validation
        literal = {k: v for k, v in env.items() if k.startswith(PREFIX) and v is not None}
        load_settings(literal)


def test_secrets_are_referenced_never_written() -> None:
    assert not SECRET_SETTINGS & set(config()), "a credential in the ConfigMap"
    assert not [o for o in production() if o["kind"] == "Secret"], "a Secret with its values in the manifests"
    for o in workloads():
        for c in pod_spec(o)["containers"]:
            for item in c.get("env", []):
                if item["name"] in SECRET_SETTINGS:
                    assert "value" not in item and item["valueFrom"]["secretKeyRef"]["name"] == "pixelflow-secrets"
    for ref in one("TriggerAuthentication", "pixelflow-redis")["spec"]["secretTargetRef"]:
        assert ref["name"] == "pixelflow-secrets"


def test_images_are_pinned_and_the_same_everywhere() -> None:
    images = {c["image"] for o in workloads() for c in pod_spec(o)["containers"]}
    assert len(images) == 1, images  # the migration runs the release it prepares the database for
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert "/" in name and re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{image}: not a registry image at a release tag"


def test_pods_run_locked_down() -> None:
    for o in workloads():
        spec = pod_spec(o)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the image's user (build/Dockerfile)
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
            assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    for name in ("pixelflow-api", "pixelflow-worker"):
        (mount,) = pod_spec(one("Deployment", name))["containers"][0]["volumeMounts"]
        assert mount["mountPath"] == "/tmp"  # the only writable path: multiprocess metrics, fontconfig cache


def _mib(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_worker_sizing_follows_its_settings_and_measurements() -> None:
    worker = one("Deployment", "pixelflow-worker")
    settings = load_settings({k: v for k, v in container_env(worker).items() if v is not None})
    resources = pod_spec(worker)["containers"][0]["resources"]
    # the engine cap acts before the kernel's OOM killer (docs/BENCHMARKS.md, compose.yaml's rule)
    engines = settings.worker_concurrency + settings.interactive_slots
    assert _mib(resources["limits"]["memory"]) == engines * settings.engine_memory_limit_mb + 256
    assert _mib(resources["requests"]["memory"]) >= 592  # measured peak, two 64 MP jobs at once
    assert int(resources["requests"]["cpu"]) == settings.worker_concurrency  # one core per job
    # SIGTERM: drain, then hand the rest back, before the kubelet's SIGKILL
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert grace >= settings.worker_drain_seconds + HANDBACK_SECONDS + 5
    api = pod_spec(one("Deployment", "pixelflow-api"))["containers"][0]["resources"]
    # `--workers 2` measured 234 MB at peak (docs/SCALING.md): requested, with twice that as the limit
    assert _mib(api["requests"]["memory"]) * 1.048576 >= 234 and _mib(api["limits"]["memory"]) * 1.048576 >= 2 * 234
    assert "--workers" in pod_spec(one("Deployment", "pixelflow-api"))["containers"][0]["args"]


def test_keda_reads_the_queue_the_workers_take_jobs_from() -> None:
    (trigger,) = one("ScaledObject", "pixelflow-worker")["spec"]["triggers"]
    worker = one("Deployment", "pixelflow-worker")
    settings = load_settings({k: v for k, v in container_env(worker).items() if v is not None})
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == settings.queue_name
    # arq's zset counts running jobs too: a target of twice the concurrency keeps as many waiting as running
    assert int(trigger["metadata"]["listLength"]) == 2 * settings.worker_concurrency
    assert one("ScaledObject", "pixelflow-worker")["spec"]["minReplicaCount"] >= 1  # the sweeper needs a worker
    assert one("ScaledObject", "pixelflow-worker")["spec"]["scaleTargetRef"]["name"] == "pixelflow-worker"


def test_ports_named_by_services_policies_and_monitors_exist() -> None:
    for name in ("pixelflow-api", "pixelflow-worker"):
        deployment = one("Deployment", name)
        ports = {p["name"]: p["containerPort"] for p in pod_spec(deployment)["containers"][0]["ports"]}
        env = container_env(deployment)
        role = "API" if name.endswith("api") else "WORKER"
        assert ports["metrics"] == int(env[f"PIXELFLOW_{role}_METRICS_PORT"])  # type: ignore[arg-type]
        assert env[f"PIXELFLOW_{role}_METRICS_HOST"] == "0.0.0.0"
        service = one("Service", name)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        policy = one("NetworkPolicy", name)
        assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} <= set(ports)
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = one("ServiceMonitor", "pixelflow")["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"


def test_the_memory_alert_tracks_the_engine_limit() -> None:
    rules = {r["alert"]: r for g in one("PrometheusRule", "pixelflow")["spec"]["groups"] for r in g["rules"]}
    limit = int(config()["PIXELFLOW_ENGINE_MEMORY_LIMIT_MB"])
    assert f"> 0.9 * {limit} * 1048576" in rules["PixelFlowEngineMemoryHigh"]["expr"]
    assert f'queue="{config()["PIXELFLOW_QUEUE_NAME"]}"' in rules["PixelFlowQueueBackingUp"]["expr"]


def test_the_profiling_container_spec_is_valid_and_never_applied() -> None:
    """deploy/k8s/profiling/py-spy.yaml, as `kubectl debug --custom` merges it into an ephemeral container."""
    custom = yaml.safe_load((K8S / "profiling" / "py-spy.yaml").read_text())
    api = copy.deepcopy(one("Deployment", "pixelflow-api"))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "profiled"}, "spec": pod_spec(api)}
    pod["spec"]["ephemeralContainers"] = [
        {"name": "py-spy", "image": pod["spec"]["containers"][0]["image"], "targetContainerName": "api", **custom}
    ]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    assert custom["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE"]
    rendered = {o["kind"] for o in production()}
    assert "EphemeralContainer" not in rendered and all("py-spy" not in str(o) for o in production())


def test_compose_grafana_loads_the_same_dashboard() -> None:
    compose = yaml.safe_load((K8S.parents[1] / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/k8s/base/dashboards/pixelflow.json"].startswith("/var/lib/grafana/dashboards/")
    provider = yaml.safe_load((K8S.parents[1] / "build" / "compose" / "grafana" / "dashboards.yaml").read_text())
    (entry,) = provider["providers"]
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards"
    assert mounts["./build/compose/grafana/dashboards.yaml"].startswith("/etc/grafana/provisioning/dashboards/")
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels) and all(p["targets"] for p in panels)
