"""compose.yaml and build/Dockerfile, checked the way a new user's ``docker compose up`` would
depend on them (no Docker engine here): every image pinned to a release, every PixelFlow setting
real and valid, restart policies and memory limits everywhere, limits consistent with the engine's
memory cap, and every file the services mount present in the repository."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import PREFIX, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# name[:tag][@digest]; a pinned tag names a release (has a digit), never a moving alias
PINNED = re.compile(r"^[a-z0-9./_-]+:(?!latest$)[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$")
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """What compose substitutes when the variable is unset: the ``${VAR:-default}`` default."""

    def default(m: re.Match[str]) -> str:
        assert m.group(2) is not None, f"${{{m.group(1)}}} has no default: compose would fail without it"
        return m.group(2)

    return _INTERPOLATION.sub(default, value)


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment must be a mapping"
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _mb(limit: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([kmg])", str(limit).lower()).groups()  # type: ignore[union-attr]
    return int(number) * {"k": 1 / 1024, "m": 1, "g": 1024}[unit]


def _ours(service: dict[str, Any]) -> bool:
    return "build" in service


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    service = SERVICES[name]
    image = service["image"]
    if _ours(service):
        assert image == f"pixelflow:{VERSION}", "our image is tagged with the project's version"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    else:
        assert PINNED.match(image), f"{name}: {image!r} is not pinned to a release tag"
        assert not image.startswith("minio/"), "MinIO's community images were removed from Docker Hub"


def test_the_dockerfile_base_images_are_pinned() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "build" / "Dockerfile").read_text(), re.M)
    assert froms
    for image in froms:
        assert PINNED.match(image), image


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if s.get("environment")))
def test_every_pixelflow_variable_is_a_valid_setting(name: str) -> None:
    env = {k: v for k, v in _env(name).items() if k.startswith(PREFIX)}
    if not env:
        return
    load_settings(env)  # raises on an unknown setting or an invalid value, as the process would


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_restart_policy_and_memory_limit(name: str) -> None:
    service = SERVICES[name]
    assert _mb(service["mem_limit"]) > 0
    if name == "migrate":
        assert service["restart"] == "no", "a one-shot job must not be restarted after it succeeds"
    else:
        assert service["restart"] in ("always", "unless-stopped", "on-failure")


def test_worker_memory_fits_its_engine_children() -> None:
    """OPERATIONS.md: every engine child (normal and interactive slots) x PIXELFLOW_ENGINE_MEMORY_LIMIT_MB must fit the container,
    or the kernel's OOM killer ends jobs (engine_crashed) before the engine cap does (out_of_memory)."""
    settings = load_settings({k: v for k, v in _env("worker").items() if k.startswith(PREFIX)})
    need = (settings.worker_concurrency + settings.interactive_slots) * settings.engine_memory_limit_mb + 256
    assert _mb(SERVICES["worker"]["mem_limit"]) >= need
    replicas = SERVICES["worker"].get("deploy", {}).get("replicas", 1)
    assert replicas * settings.worker_concurrency <= 2, "sized for a 2-core host: one job per core"
    # a worker stopped by compose gets its drain time before SIGKILL
    grace = float(SERVICES["worker"]["stop_grace_period"].rstrip("s"))
    assert grace > settings.worker_drain_seconds


def test_mounted_files_exist_and_metrics_targets_match() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts {source}, which is missing"
    scrape = yaml.safe_load((ROOT / "build" / "compose" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    api, worker = _env("api"), _env("worker")
    assert targets == {
        f"api:{api['PIXELFLOW_API_METRICS_PORT']}",
        f"worker:{worker['PIXELFLOW_WORKER_METRICS_PORT']}",
    }
    assert api["PIXELFLOW_API_METRICS_HOST"] == worker["PIXELFLOW_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_the_object_store_answers_where_urls_point() -> None:
    env = _env("api")
    store = SERVICES[env["PIXELFLOW_S3_ENDPOINT"].split(":")[0]]
    port = env["PIXELFLOW_S3_ENDPOINT"].split(":")[1]
    assert f"{port}:{port}" in store["ports"], "presigned URLs name the published port"
    assert env["PIXELFLOW_S3_PUBLIC_ENDPOINT"] == f"localhost:{port}"
    assert store["environment"]["AWS_ACCESS_KEY_ID"] and _interpolate(
        store["environment"]["AWS_SECRET_ACCESS_KEY"]
    ) == _interpolate(env["PIXELFLOW_S3_SECRET_KEY"])
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"]["s3"]["condition"] == "service_healthy"
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
