"""The OpenAPI document's promises, read from the document the app serves (built without any
server: create_app does no I/O until its lifespan starts)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from control_plane.app import create_app
from control_plane.problems import Problem
from infra.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
OPEN = {"healthz", "readyz", "getObject", "putObject"}  # no API key: liveness, readiness, signed URLs


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # local storage and a metrics token: the routes only some deployments have are in too
    settings = load_settings(
        {"PIXELFLOW_STORAGE": "local", "PIXELFLOW_URL_SIGNING_SECRET": "s" * 32, "PIXELFLOW_METRICS_TOKEN": "m" * 32}
    )
    return create_app(settings).openapi_schema.to_schema()


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for item in document["paths"].values() for m, op in item.items() if m in METHODS}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref") or (schema.get("allOf") or [{}])[0].get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def test_every_operation_is_named_summarised_and_described(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert set(operations) == {
        "createJob",
        "startJob",
        "getJob",
        "listJobs",
        "cancelJob",
        "deleteJob",
        "getVariant",
        "listDeliveries",
        "redeliver",
        "createUpload",
        "validateSpec",
        "getLimits",
        "getUsage",
        "createAssetUpload",
        "saveTemplate",
        "listTemplates",
        "getTemplate",
        "diffTemplate",
        "healthz",
        "readyz",
        "getObject",
        "putObject",
        "metrics",
    }
    for name, op in operations.items():
        assert re.fullmatch(r"[a-z][A-Za-z]+", name)
        assert op.get("summary") and len(op.get("description", "")) > 40, name


def test_every_error_is_problem_json(document: dict[str, Any]) -> None:
    for name, op in _operations(document).items():
        errors = {status: r for status, r in op["responses"].items() if status.startswith(("4", "5"))}
        assert errors or name == "healthz", name  # liveness answers 200 or not at all
        for status, response in errors.items():
            if (name, status) == ("readyz", "503"):  # readiness reports each check, not a problem
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("/Health")
                continue
            assert response["content"] == PROBLEM, (name, status)
            assert response["description"], (name, status)


def test_the_problem_schema_is_the_struct(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Problem"]["required"] == ["type", "title", "status"]
    assert set(schemas["Problem"]["properties"]) == {f.name for f in msgspec.structs.fields(Problem)}
    assert schemas["FieldError"]["required"] == ["path", "message"]


def test_api_key_where_needed_and_only_there(document: dict[str, Any]) -> None:
    assert document["security"] == [{"apiKey": []}]
    for name, op in _operations(document).items():
        if name in OPEN:
            assert op["security"] == [], name
            assert "401" not in op["responses"], name
        elif name == "metrics":  # its own token, never an API key
            assert op["security"] == [{"metricsToken": []}]
            assert op["responses"]["401"]["description"] == "Missing or invalid metrics token"
        else:
            assert "security" not in op, name  # the document's API key
            assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_statuses_and_headers_each_operation_really_sends(document: dict[str, Any]) -> None:
    ops = _operations(document)
    statuses = {name: set(op["responses"]) for name, op in ops.items()}
    # 403: a scoped key without jobs:write, or a presets-only key sending a spec; 404: no such template
    assert statuses["createJob"] == {"200", "201", "400", "401", "403", "404", "409", "413", "422", "429", "503"}
    assert statuses["startJob"] == {"202", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503"}
    assert statuses["deleteJob"] == {"204", "400", "401", "403", "404", "409", "503"}
    assert "content" not in ops["deleteJob"]["responses"]["204"]
    assert statuses["listTemplates"] == {"200", "401", "503"}  # any key of the client may read templates
    assert statuses["saveTemplate"] == {"200", "201", "400", "401", "403", "413", "422", "503"}
    assert statuses["getVariant"] == {"302", "400", "401", "403", "404", "410", "503"}  # 410: retention deleted it
    assert statuses["healthz"] == {"200"}
    for status in ("200", "201"):  # a replay is 200, a new job 201; both carry the limiter's state
        headers = ops["createJob"]["responses"][status]["headers"]
        assert headers["RateLimit-Policy"]["required"] and headers["RateLimit"]["required"]
        assert headers["Idempotent-Replayed"]["required"] is False
    limited = ops["createJob"]["responses"]["429"]["headers"]
    # rate_limited carries the limiter's state; too_many_active_jobs (a job with a source, queued
    # at creation) only Retry-After
    assert limited["Retry-After"]["required"]
    assert [limited[h]["required"] for h in ("RateLimit-Policy", "RateLimit")] == [False, False]
    busy = ops["startJob"]["responses"]["429"]["headers"]  # too_many_active_jobs: no limiter
    assert set(busy) == {"Retry-After"}
    assert ops["getVariant"]["responses"]["302"]["headers"]["Location"]["required"] is True
    assert ops["getJob"]["responses"]["503"]["headers"]["Retry-After"]["required"] is True


def test_the_job_spec_is_the_published_schema(document: dict[str, Any]) -> None:
    published = json.loads((ROOT / "schemas" / "job-spec.v1.json").read_text())
    components = document["components"]["schemas"]
    as_components = json.loads(json.dumps(published["$defs"]).replace('"#/$defs/', '"#/components/schemas/'))
    assert {name: components[name] for name in as_components} == as_components
    assert published["$ref"] == "#/$defs/JobSpec"
    ops = _operations(document)
    body = ops["createJob"]["requestBody"]["content"]["application/json"]["schema"]
    either = [{"$ref": "#/components/schemas/JobSpec"}, {"$ref": "#/components/schemas/TemplateJob"}]
    assert body["anyOf"] == either  # a spec, or a template reference
    assert components["ValidateRequest"]["properties"]["spec"]["anyOf"] == either
    assert components["TemplateJob"]["additionalProperties"] is False
    assert components["ValidateResponse"]["properties"]["spec"] == {"$ref": "#/components/schemas/JobSpec"}
    form = ops["createUpload"]["requestBody"]["content"]["multipart/form-data"]
    assert _resolve(document, form["schema"])["properties"]["spec"] == {"$ref": "#/components/schemas/JobSpec"}
    assert form["encoding"]["spec"]["contentType"] == "application/json"


def test_jobs_link_to_the_operations_on_them(document: dict[str, Any]) -> None:
    links = _operations(document)["createJob"]["responses"]["201"]["links"]
    assert {"getJob", "startJob", "cancelJob", "listDeliveries", "redeliver"} <= set(links)
    assert links["startJob"] == {
        "operationId": "startJob",
        "parameters": {"job_id": "$response.body#/id"},
        "description": links["startJob"]["description"],
    }


def test_webhooks_are_the_three_events(document: dict[str, Any]) -> None:
    hooks = document["webhooks"]
    assert set(hooks) == {"job.succeeded", "job.failed", "job.canceled"}
    for event, item in hooks.items():
        post = item["post"]
        headers = {p["name"]: p["required"] for p in post["parameters"] if p["in"] == "header"}
        assert headers == {
            "webhook-id": True,
            "webhook-timestamp": True,
            "webhook-signature": True,
            "traceparent": False,
        }
        body = post["requestBody"]["content"]["application/json"]["schema"]["allOf"]
        assert body[0] == {"$ref": "#/components/schemas/JobEvent"}
        assert body[1]["properties"]["type"] == {"const": event}
    data = document["components"]["schemas"]["JobEventData"]
    assert set(data["required"]) == {"job_id", "status", "attempts", "metadata", "variants", "error"}


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator
    from schemathesis.specs.openapi.definitions import OPENAPI_31  # the meta-schema schemathesis ships

    assert document["openapi"].startswith("3.1")
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(OPENAPI_31).iter_errors(document)]
    assert errors == []
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_a_webhook_body_matches_its_schema(document: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    from infra.events import EventError, JobEvent, JobEventData

    event = JobEvent(
        type="job.failed",
        timestamp="2025-11-23T10:00:00+00:00",
        data=JobEventData(
            job_id="6f0c5a0e-4b1f-4a57-9c07-3f7d8a4a8a11",
            status="failed",
            attempts=1,
            metadata={"sku": "1"},
            variants=[],
            error=EventError("corrupt_image", "the image data is corrupt"),
        ),
    )
    body = msgspec.to_builtins(event)
    pointer = "#/webhooks/job.failed/post/requestBody/content/application~1json/schema"
    Draft202012Validator({**document, "$ref": pointer}).validate(body)
    wrong = {**body, "type": "job.succeeded"}
    assert not Draft202012Validator({**document, "$ref": pointer}).is_valid(wrong)


def test_the_docs_page_assets_ship_in_the_package() -> None:
    import tomllib

    from control_plane.api.docs import REDOC_VERSION

    package = ROOT / "control_plane"
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in patterns["control_plane"] for path in package.glob(pattern)}
    assets = {path for path in (package / "api" / "redoc").rglob("*") if path.is_file()}
    assert assets and assets <= shipped
    bundle = package / "api" / "redoc" / "redoc.standalone.js"
    assert f'Version: "{REDOC_VERSION}"' in (bundle.parent / "redoc.standalone.js.LICENSE.txt").read_text()
    assert "MIT License" in (bundle.parent / "LICENSE").read_text()
