"""``GET /img/{sig}/{kid}/{options...}/{source}``: a signed image URL, served from the derived
cache or rendered into it (docs/delivery.md). No API key: the signature is the credential, and
its key id names the client."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, get
from opentelemetry import trace

from control_plane.delivery.grammar import (
    ROUTE_PREFIX,
    SOURCE_PATH,
    SourceRef,
    invalid_signature,
    parse_options,
    parse_source,
    split_path,
)
from control_plane.delivery.negotiate import ACCEPT_CH, source_features
from control_plane.delivery.render import MAX_DERIVED_BYTES, Rendered, StoredSource, render
from control_plane.delivery.variants import plan_variant
from control_plane.deps import ApiDeps, ApiDepsDep
from control_plane.problems import NotFound, Unprocessable
from infra.metrics import URL_REQUESTS
from infra.netguard import BlockedDestination, check_literal
from infra.objects import asset_key, derived_hash, derived_key, forget_replaced
from infra.policy import client_limits, engine_limits
from infra.signing import signature_matches
from infra.storage import ObjectNotFound
from infra.telemetry import parent
from infra.url_policy import origin_of, parse_origins, parse_widths
from pipeline.dsl.steps import AssetKey
from pipeline.errors import FieldError, UnsupportedFormat
from pipeline.formats import FORMATS
from pipeline.sniff import SNIFF_BYTES, sniff

__all__ = ["signed_image"]


@get(f"{ROUTE_PREFIX}/{{rest:path}}", include_in_schema=False)
async def signed_image(request: Request, deps: ApiDepsDep) -> Response[bytes]:
    try:
        response, result = await _serve(request, deps)
    except Exception:  # answered by problem_response: ours, the validator's, an outage's 503
        URL_REQUESTS.labels("error").inc()
        raise
    URL_REQUESTS.labels(result).inc()
    trace.get_current_span().set_attribute("pixelflow.url.result", result)
    return response


async def _serve(request: Request, deps: ApiDeps) -> tuple[Response[bytes], str]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    signed = split_path(raw.decode("latin-1").partition("?")[0])
    live = await deps.signing_keys.live(signed.kid)
    if live is None or not signature_matches(live[1], signed.signed, signed.signature):
        raise invalid_signature()
    client_id = live[0]
    processing = parse_options(signed.options)
    policy = await deps.clients.policy(client_id)
    in_force = client_limits(deps.settings, policy)
    ref = parse_source(signed.source)
    if ref.kind == "url":
        source = _url_source(deps, ref.id, parse_origins(in_force.url_source_origins))
    else:
        source = await _stored_source(deps, client_id, ref)

    async def features() -> tuple[bool, bool]:
        if source.key is None or source.format is None:  # a URL, not fetched yet: what its name says
            fmt = _format_named(ref.id)
            return (FORMATS[fmt].alpha if fmt else False), False
        if source.format == "jpeg":
            return False, False
        head = source.head if source.head is not None else await deps.store.read_head(source.key, SNIFF_BYTES)
        return source_features(source.format, head)

    plan = await plan_variant(
        deps.templates,
        client_id,
        processing,
        limits=engine_limits(deps.settings, policy),
        templates_only=in_force.url_templates_only,
        widths=parse_widths(in_force.url_widths),
        headers=request.headers,
        features=features,
        source_url=ref.id if ref.kind == "url" else None,
    )
    digest = derived_hash(source.kind, source.id, source.version, plan.variant, plan.format)
    key = derived_key(client_id, source.kind, source.id, digest, plan.format)
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": deps.settings.url_cache_control, "Accept-CH": ACCEPT_CH}
    if plan.vary:
        headers["Vary"] = ", ".join(plan.vary)
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        deps.served.count(client_id, hit=True, sent=0)
        return Response(b"", status_code=304, headers=headers), "hit"
    result = "hit"
    try:
        data = await deps.store.read(key, max_bytes=MAX_DERIVED_BYTES)
    except ObjectNotFound:
        if source.kind == "asset":
            await forget_replaced(deps.store, client_id, source.kind, source.id, source.version)
        rendered = await render(deps, client_id, source, plan, digest, key)
        _link(rendered)
        data, result = rendered.data, "coalesced" if rendered.coalesced else "miss"
    deps.served.count(client_id, hit=result == "hit", sent=len(data))
    return Response(data, media_type=FORMATS[plan.format].mime, headers=headers), result


def _link(rendered: Rendered) -> None:
    """Name the render on the request's span; a request that joined another's render also links
    to that render's trace (which starts at the request that created the job, as its child)."""
    span = trace.get_current_span()
    span.set_attribute("pixelflow.url.render_job", str(rendered.job_id))
    if rendered.coalesced and rendered.trace_context:
        context = parent(rendered.trace_context)
        linked = trace.get_current_span(context).get_span_context() if context is not None else None
        if linked is not None and linked.is_valid and linked.trace_id != span.get_span_context().trace_id:
            span.add_link(linked, {"pixelflow.url.render_job": str(rendered.job_id)})


def _no_source() -> NotFound:
    """One answer for a source that never existed, was deleted, or is another client's."""
    return NotFound("no such source", code="source_not_found")


def _url_source(deps: ApiDeps, url: str, origins: frozenset[str]) -> StoredSource:
    """A url: source on one of the client's origins, its host not literally internal (the worker
    checks what the name resolves to, hop by hop, as for a job's URL source)."""
    if not origins:
        raise Unprocessable(
            "URL sources are not enabled for this client's image URLs; use job: or asset:",
            code="url_sources_not_enabled",
            errors=[FieldError(SOURCE_PATH, "url: sources need origins in the client's url_source_origins")],
        )
    if origin_of(url) not in origins:
        raise Unprocessable(
            "the source URL's origin is not one this client allows",
            code="url_source_not_allowed",
            errors=[FieldError(SOURCE_PATH, f"allowed origins: {', '.join(sorted(origins))}")],
        )
    try:
        check_literal(url, allow_private=deps.settings.url_sources_allow_private)
    except BlockedDestination as exc:
        raise Unprocessable(
            "the source URL is not allowed", code="url_source_not_allowed", errors=[FieldError(SOURCE_PATH, str(exc))]
        ) from None
    return StoredSource("url", hashlib.sha256(url.encode()).hexdigest()[:32], None, "", None, None)


def _format_named(url: str) -> str | None:
    """The format a URL's file name suggests (for negotiation before it is fetched)."""
    name = urlsplit(url).path.rsplit("/", 1)[-1].lower()
    return next((f.name for f in FORMATS.values() if name.endswith(f.extensions)), None)


async def _stored_source(deps: ApiDeps, client_id: uuid.UUID, ref: SourceRef) -> StoredSource:
    if ref.kind == "job":
        job = await deps.jobs.get(uuid.UUID(ref.id), client_id)
        if job is None or job.origin != "api" or job.source_format is None:
            raise _no_source()
        key, fmt = job.source_key, job.source_format
    else:
        try:
            msgspec.convert(ref.id, AssetKey)
        except msgspec.ValidationError:
            raise _no_source() from None
        key, fmt = asset_key(client_id, ref.id), None
    info = await deps.store.stat(key)
    if info is None:
        raise _no_source()
    head = None
    if fmt is None:
        try:
            head = await deps.store.read_head(key, SNIFF_BYTES)
            fmt = sniff(head)
        except (UnsupportedFormat, ObjectNotFound):
            raise _no_source() from None
    return StoredSource(ref.kind, ref.id, key, info.version or f"{info.size}", info.size, fmt, head)
