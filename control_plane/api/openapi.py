"""The OpenAPI document at ``/schema/openapi.json``.

Litestar derives paths, parameters and success bodies from the handlers. What it cannot see is
finished here, in one pass over the built document (``describe``):

- every error an operation can answer, as RFC 9457 ``application/problem+json``, from the error
  classes in ``control_plane.problems`` (status, title and headers each have one home there). A
  handler names the errors its own code raises (``doc(raises=...)``); those that come from the
  route's shape are added from its signature: a ``principal`` means 401, a backing service means
  503, a body or parameters mean 400, a body means 413;
- ``security: []`` on operations that take no API key;
- the job spec's JSON Schema (the generator that writes ``schemas/job-spec.v1.json``) as
  components, wherever a value is annotated ``JOB_SPEC``;
- response headers, links from every response that returns a job to the operations on it, and
  the ``webhooks`` a client receives (their shape is ``infra.events``').
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import (
    Components,
    Encoding,
    Link,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.base import BaseSchemaObject
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from control_plane.api.bodies import JsonNotUtf8, JsonTooDeep
from control_plane.api.docs import docs_plugins
from control_plane.auth.principal import SCOPE_OPT
from control_plane.problems import (
    PROBLEM_JSON,
    ApiError,
    BadRequest,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    Unauthorized,
)
from control_plane.templates.reference import TemplateJob
from infra.events import EVENTS, JobEvent
from pipeline.dsl.schema import job_spec_components

__all__ = [
    "JOB_REQUEST",
    "JOB_SPEC",
    "METRICS_TOKEN",
    "DocumentedAs",
    "JobSpecSchemaPlugin",
    "describe",
    "doc",
    "openapi_config",
]

COMPONENT = "#/components/schemas/{name}"
API_KEY = "apiKey"
METRICS_TOKEN = "metricsToken"  # noqa: S105 - the security scheme's name, not a secret


class _JobSpecMarker:
    def __repr__(self) -> str:
        return "JOB_SPEC"


# ``Annotated[dict[str, Any], JOB_SPEC]``: documented as the job spec, parsed as the annotated type
# (the API decodes specs itself, so every error is reported at once with its path).
JOB_SPEC = _JobSpecMarker()
# ``Annotated[dict[str, Any], JOB_REQUEST]``: what creates a job, a job spec or a template
# reference (control_plane.templates.reference.TemplateJob); parsed as the annotated type, for the same reason.
JOB_REQUEST = _JobSpecMarker()


@dataclass(frozen=True)
class DocumentedAs:
    """``Annotated[str, DocumentedAs(AssetKey)]``: documented as the stricter type, parsed as the
    annotated one, because the handler checks it to answer 422 with the field's path."""

    annotation: Any


class JobSpecSchemaPlugin(OpenAPISchemaPlugin):
    """Documents values marked ``JOB_SPEC`` or ``DocumentedAs``."""

    def is_plugin_supported_field(self, field_definition: Any) -> bool:
        return any(
            m is JOB_SPEC or m is JOB_REQUEST or isinstance(m, DocumentedAs) for m in field_definition.metadata or ()
        )

    def to_openapi_schema(self, field_definition: Any, schema_creator: Any) -> Any:
        for m in field_definition.metadata:
            if isinstance(m, DocumentedAs):
                schema = msgspec.json.schema(m.annotation)
                if "$defs" in schema:  # it names structs: components, as Litestar documents them
                    return schema_creator.for_field_definition(FieldDefinition.from_annotation(m.annotation))
                # msgspec reads its own constraints (Meta pattern, lengths); Litestar would drop them here
                aliases = Schema().field_aliases()
                return Schema(**{aliases.get(k, k): v for k, v in schema.items()})
            if m is JOB_REQUEST:
                return Schema(
                    any_of=[Reference(COMPONENT.format(name=name)) for name in ("JobSpec", "TemplateJob")],
                    description="A job spec, or a template reference with its parameters.",
                )
        return Reference(COMPONENT.format(name="JobSpec"))


@dataclass(frozen=True)
class _Doc:
    raises: tuple[type[ApiError], ...] = ()
    sends: tuple[str, ...] = ()
    body: str | None = None
    returns: str | None = None


def doc(
    *,
    raises: Iterable[type[ApiError]] = (),
    sends: Iterable[str] = (),
    body: str | None = None,
    returns: str | None = None,
) -> dict[str, Any]:
    """A handler's ``opt``: the errors its own code raises, the headers its 2xx and 3xx responses
    carry, and the media types of the raw bytes it reads (``body``) or returns (``returns``), which
    its signature does not show."""
    return {"openapi": _Doc(tuple(raises), tuple(sends), body, returns)}


def _header(description: str, schema: Schema, *, required: bool = True) -> OpenAPIHeader:
    return OpenAPIHeader(description=description, schema=schema, required=required)


_TEXT = Schema(type=OpenAPIType.STRING)
# Every response header the API sends, documented once (ratelimit.Decision.headers writes the two RateLimit ones).
HEADERS: dict[str, OpenAPIHeader] = {
    "Retry-After": _header("Seconds to wait before trying again.", Schema(type=OpenAPIType.INTEGER, minimum=1)),
    "RateLimit-Policy": _header(
        'The limit: `"<name>";q=<burst>;w=<seconds to earn the burst back>` (draft-ietf-httpapi-ratelimit-headers).',
        _TEXT,
    ),
    "RateLimit": _header('What is left of it: `"<name>";r=<requests left>;t=<seconds until the full burst>`.', _TEXT),
    "WWW-Authenticate": _header("A `Bearer` challenge: send `Authorization: Bearer <key or token>`.", _TEXT),
    "Allow": _header("The methods this path accepts.", _TEXT),
    "Location": _header(
        "The variant's presigned download URL.", Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI)
    ),
    "Idempotent-Replayed": _header(
        "`true` when this `Idempotency-Key` created the job before (with the same spec): the stored job is returned.",
        Schema(type=OpenAPIType.STRING, enum=["true"]),
        required=False,
    ),
}


@dataclass
class _Verbatim(BaseSchemaObject):
    """A JSON Schema that msgspec generated, emitted as is (Litestar's spec objects would drop its nulls)."""

    value: dict[str, Any]

    def to_schema(self) -> dict[str, Any]:
        return self.value


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="PixelFlow",
        version="1.0.0",
        description=(
            "Declarative image pipelines: one decode, many variants, direct-to-S3 uploads, signed webhooks.\n\n"
            "Errors are RFC 9457 `application/problem+json` with a stable `code` and, for job specs, every "
            "invalid field's path in `errors[]`."
        ),
        components=Components(
            security_schemes={
                API_KEY: SecurityScheme(type="http", scheme="bearer", description="A PixelFlow API key"),
                METRICS_TOKEN: SecurityScheme(
                    type="http", scheme="bearer", description="PIXELFLOW_METRICS_TOKEN, for /metrics only"
                ),
            }
        ),
        security=[{API_KEY: []}],
        use_handler_docstrings=True,
        render_plugins=docs_plugins(),
    )


def describe(app: Litestar) -> None:
    """Finish the app's document in place, before it is first served (Litestar caches it)."""
    document = app.openapi_schema
    paths = document.paths
    assert paths is not None  # Litestar lists every route's path
    schemas = document.components.schemas
    # The job spec and a template job share the source's struct: one component, listed once.
    spec_parts = _job_spec_components()
    template_parts = [p for p in _components([TemplateJob]) if p not in spec_parts]
    _add_components(schemas, *_problem_components(), *spec_parts, *_event_components(), *template_parts)
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if handler.resolve_include_in_schema():
                operation = getattr(paths[route.path_format], method.lower())
                _describe_operation(operation, handler, schemas)
    _link_jobs(paths)
    document.webhooks = _webhooks()


_SHARED_WITH_EVENTS = frozenset({"PublicVariant", "SourceDetails", "Camera", "Location"})


def _add_components(schemas: dict[str, Any], *parts: tuple[str, dict[str, Any]]) -> None:
    for name, schema in parts:
        existing = schemas.get(name)
        # the structs both the views and the webhook events use arrive twice (Litestar's rendering
        # first); any other name twice would be two shapes under one name
        if existing is not None and name not in _SHARED_WITH_EVENTS:
            raise RuntimeError(f"two OpenAPI components are named {name!r}")
        schemas.setdefault(name, _Verbatim(schema))


def _components(types: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
    _, defs = msgspec.json.schema_components(types, ref_template=COMPONENT)
    return list(defs.items())


def _problem_components() -> list[tuple[str, dict[str, Any]]]:
    return _components([Problem])


def _job_spec_components() -> list[tuple[str, dict[str, Any]]]:
    _, defs = job_spec_components(COMPONENT)
    return list(defs.items())


def _event_components() -> list[tuple[str, dict[str, Any]]]:
    return _components([JobEvent])


def _generic_errors(operation: Operation, handler: HTTPRouteHandler) -> list[type[ApiError]]:
    """The errors that come from the route's shape rather than from its handler's code."""
    params = handler.parsed_fn_signature.parameters
    errors: list[type[ApiError]] = []
    if "principal" in params:
        errors.append(Unauthorized)
    if SCOPE_OPT in handler.opt:
        errors.append(Forbidden)  # a scoped key without the route's scope
    parsed_body = operation.request_body is not None and not _doc(handler).body  # JSON or multipart
    if parsed_body or operation.parameters:
        errors.append(InvalidRequest)
    if parsed_body:
        errors += [BadRequest, JsonTooDeep, JsonNotUtf8, PayloadTooLarge]
    if "principal" in params or "deps" in params:
        errors.append(ServiceUnavailable)
    return errors


def _doc(handler: HTTPRouteHandler) -> _Doc:
    return handler.opt.get("openapi") or _Doc()


def _describe_operation(operation: Operation, handler: HTTPRouteHandler, schemas: dict[str, Any]) -> None:
    info = _doc(handler)
    _close_structs(handler, schemas)
    if "principal" not in handler.parsed_fn_signature.parameters and not handler.security:
        operation.security = []  # an empty list, not None: None would inherit the document's API key
    if info.body:
        operation.request_body = RequestBody(
            required=True,
            content={info.body: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))},
        )
    responses = operation.responses or {}
    declared = {str(status) for status in handler.responses or {}}  # e.g. readyz's own 503 body
    # Litestar's default 400 has its own error shape; ours replaces it.
    responses.pop("400", None)
    by_status: dict[int, list[type[ApiError]]] = {}
    for error in (*info.raises, *_generic_errors(operation, handler)):
        if error not in by_status.setdefault(error.status, []):
            by_status[error.status].append(error)
    for status, errors in sorted(by_status.items()):
        if str(status) not in declared:
            responses[str(status)] = _problem_response(errors)
    for key, response in responses.items():
        if key.startswith(("2", "3")) and isinstance(response, OpenAPIResponse):
            _success(response, info)
    operation.responses = dict(sorted(responses.items()))
    _multipart_encoding(operation, schemas)


def _success(response: OpenAPIResponse, info: _Doc) -> None:
    sent = {name.lower() for name in info.sends}
    # Litestar documents its own "location" for redirects; ours says where it points
    headers = {k: v for k, v in (response.headers or {}).items() if k.lower() not in sent}
    response.headers = {**headers, **{name: HEADERS[name] for name in info.sends}} or None
    if info.returns:
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        response.content = {info.returns: OpenAPIMediaType(schema=binary)}
    elif response.content and all(_is_null(m.schema) for m in response.content.values()):
        response.content = None  # a handler that returns None sends no body


def _problem_response(errors: list[type[ApiError]]) -> OpenAPIResponse:
    titles = list(dict.fromkeys(e.title for e in errors))
    names = list(dict.fromkeys(name for e in errors for name in e.headers_sent))
    headers: dict[str, OpenAPIHeader | Reference] = {}
    for name in names:
        always = all(name in e.headers_sent for e in errors)
        base = HEADERS[name]
        headers[name] = OpenAPIHeader(description=base.description, schema=base.schema, required=always)
    return OpenAPIResponse(
        description="; ".join(titles),
        content={PROBLEM_JSON: OpenAPIMediaType(schema=Reference(COMPONENT.format(name="Problem")))},
        headers=headers or None,
    )


def _close_structs(handler: HTTPRouteHandler, schemas: dict[str, Any]) -> None:
    """Litestar does not say that a struct with ``forbid_unknown_fields`` refuses unknown fields."""
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None or not (isinstance(data.annotation, type) and issubclass(data.annotation, msgspec.Struct)):
        return
    pending, seen = [msgspec.inspect.type_info(data.annotation)], set()
    while pending:
        info = pending.pop()
        if isinstance(info, msgspec.inspect.StructType) and info.cls not in seen:
            seen.add(info.cls)
            component = schemas.get(info.cls.__name__)
            if info.forbid_unknown_fields and isinstance(component, Schema):
                component.additional_properties = False
            pending += [f.type for f in info.fields]
        elif isinstance(info, msgspec.inspect.UnionType):
            pending += info.types
        elif isinstance(info, msgspec.inspect.DictType):  # e.g. a template's parameters by name
            pending.append(info.value_type)
        elif isinstance(info, msgspec.inspect.CollectionType | msgspec.inspect.Metadata):
            pending.append(info.item_type if isinstance(info, msgspec.inspect.CollectionType) else info.type)


def _is_null(schema: Any) -> bool:
    return isinstance(schema, Schema) and schema.type == "null"


def _multipart_encoding(operation: Operation, schemas: dict[str, Any]) -> None:
    """A multipart part that holds a job spec is JSON text (OpenAPI's default for object parts, said outright)."""
    body = operation.request_body
    if not isinstance(body, RequestBody):
        return
    media = body.content.get("multipart/form-data")
    if media is None:
        return
    spec = COMPONENT.format(name="JobSpec")
    schema = media.schema
    if isinstance(schema, Reference):
        schema = schemas[schema.ref.rsplit("/", 1)[-1]]
    properties = getattr(schema, "properties", None) or {}
    media.encoding = {
        name: Encoding(content_type="application/json")
        for name, prop in properties.items()
        if isinstance(prop, Reference) and prop.ref == spec
    } or None


def _link_jobs(paths: dict[str, PathItem]) -> None:
    """Every response that returns a job links to each operation that takes only its id."""
    job_view = COMPONENT.format(name="JobView")
    targets = [
        operation
        for path_item in paths.values()
        for operation in _operations(path_item)
        if [p.name for p in operation.parameters or () if isinstance(p, Parameter) and p.param_in == "path"]
        == ["job_id"]
    ]
    for path_item in paths.values():
        for operation in _operations(path_item):
            for status, response in (operation.responses or {}).items():
                if not status.startswith("2") or not isinstance(response, OpenAPIResponse):
                    continue
                media = (response.content or {}).get("application/json")
                if media is None or not isinstance(media.schema, Reference) or media.schema.ref != job_view:
                    continue
                response.links = {
                    target.operation_id: Link(
                        operation_id=target.operation_id,
                        parameters={"job_id": "$response.body#/id"},
                        description=f"`id` is the `job_id` of {target.operation_id}.",
                    )
                    for target in targets
                    if target is not operation and target.operation_id is not None  # Litestar names every one
                }


def _operations(path_item: PathItem) -> list[Operation]:
    methods = ("get", "put", "post", "delete", "patch")
    return [op for op in (getattr(path_item, m) for m in methods) if isinstance(op, Operation)]


_WEBHOOK_HEADERS = [
    ("webhook-id", True, "The message id: the same for every retry and redelivery of this event (deduplicate on it)."),
    ("webhook-timestamp", True, "Unix seconds when this attempt was signed: reject it if older than 5 minutes."),
    (
        "webhook-signature",
        True,
        '`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` with the client\'s `whsec_` secret; '
        "space-separated, one per active secret during a rotation (Standard Webhooks).",
    ),
    ("traceparent", False, "W3C Trace Context of the job's trace, when tracing is on."),
]


def _webhooks() -> dict[str, PathItem | Reference]:
    parameters: list[Parameter | Reference] = [
        Parameter(name=name, param_in="header", required=required, description=text, schema=_TEXT)
        for name, required, text in _WEBHOOK_HEADERS
    ]
    hooks: dict[str, PathItem | Reference] = {}
    for status, event in EVENTS.items():
        body = _Verbatim(
            {
                "allOf": [
                    {"$ref": COMPONENT.format(name="JobEvent")},
                    {
                        "properties": {
                            "type": {"const": event},
                            "data": {"properties": {"status": {"const": status.value}}},
                        }
                    },
                ]
            }
        )
        hooks[event] = PathItem(
            post=Operation(
                operation_id=event.replace(".", "_"),
                summary=event,
                description=(
                    f"POSTed to the spec's `webhook_url` when a job ends `{status.value}`, signed per Standard "
                    "Webhooks. Answer 2xx to acknowledge. Other answers and network errors are retried with "
                    "exponential backoff over hours (honouring `Retry-After`); `410 Gone` disables the endpoint. "
                    "Redirects are not followed."
                ),
                parameters=parameters,
                request_body=RequestBody(
                    required=True,
                    content={"application/json": OpenAPIMediaType(schema=body)},  # type: ignore[arg-type]  # a _Verbatim stands for a Schema
                ),
                responses={
                    "2XX": OpenAPIResponse(description="Received; not sent again."),
                    "410": OpenAPIResponse(description="Gone: no more deliveries to this URL for this client."),
                    "default": OpenAPIResponse(description="Retried later, after `Retry-After` if given."),
                },
                security=[],
            )
        )
    return hooks
