"""RFC 9457 problem details. Every error the API returns is rendered here, from one table.

Our own errors carry their status and public message. Foreign exceptions (spec and image errors
from the pipeline, Litestar's own) are mapped by ``_FOREIGN``. Anything else is a 500 whose
detail is logged under an id, never returned.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from infra.outages import TRANSIENT
from pipeline.errors import FieldError, ImageTooLarge, PipelineError, SpecError, UnsupportedFormat

__all__ = [
    "PROBLEM_JSON",
    "ApiError",
    "BadRequest",
    "Conflict",
    "CsrfFailed",
    "Forbidden",
    "Gone",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "RateLimited",
    "ServiceUnavailable",
    "SignInFailed",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "problem_response",
]

log = logging.getLogger("pixelflow.api")
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://pixelflow.dev/problems/"


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details. ``code`` is stable (``type`` is its URI form); ``errors`` locates
    each invalid field of a request or job spec by its path, such as ``$.pipeline[2].steps[0].width``."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str | None = None
    errors: list[FieldError] | None = None


class ApiError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal server error"
    # Response headers this error always carries; the OpenAPI document lists them from here.
    headers_sent: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.code = code or self.code
        self.headers = headers or {}
        self.errors = errors


class BadRequest(ApiError):
    status, code, title = 400, "bad_request", "Bad request"


class InvalidRequest(ApiError):
    status, code, title = 400, "invalid_request", "Invalid request"


class Unauthorized(ApiError):
    status, code, title = 401, "unauthorized", "Missing or invalid API key"
    headers_sent = ("WWW-Authenticate",)


class SignInFailed(ApiError):
    """The dashboard's sign-in: one answer for an unknown email, a wrong password and a disabled account."""

    status, code, title = 401, "invalid_credentials", "Wrong email or password"


class Forbidden(ApiError):
    status, code, title = 403, "forbidden", "Forbidden"


class CsrfFailed(Forbidden):
    code, title = "csrf_failed", "Missing or wrong CSRF token"


class NotFound(ApiError):
    status, code, title = 404, "not_found", "Not found"


class Gone(ApiError):
    """It existed, and was deleted on purpose (retention): asking again will not bring it back."""

    status, code, title = 410, "gone", "Gone"


class MethodNotAllowed(ApiError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"
    headers_sent = ("Allow",)


class Conflict(ApiError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ApiError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(ApiError):
    status, code, title = 415, "unsupported_format", "Unsupported image format"


class Unprocessable(ApiError):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class TooManyRequests(ApiError):
    status, code, title = 429, "rate_limited", "Too many requests"
    headers_sent: ClassVar[tuple[str, ...]] = ("Retry-After",)


class RateLimited(TooManyRequests):
    """A per-client, per-key or per-job rate limit: the limiter's state comes along (ratelimit.Decision.headers)."""

    headers_sent = ("Retry-After", "RateLimit-Policy", "RateLimit")


class ServiceUnavailable(ApiError):
    status, code, title = 503, "unavailable", "Service unavailable"
    headers_sent = ("Retry-After",)


def _from_spec_error(exc: SpecError) -> ApiError:
    return Unprocessable("the job spec is invalid", code="invalid_spec", errors=list(exc.errors))


def _from_pipeline_error(exc: PipelineError) -> ApiError:
    if isinstance(exc, UnsupportedFormat):
        return UnsupportedMediaType(exc.public, code=exc.code)
    if isinstance(exc, ImageTooLarge):
        return PayloadTooLarge(exc.public, code=exc.code)
    return Unprocessable(exc.public, code=exc.code)


def _from_validation(exc: ValidationException) -> ApiError:
    errors = [
        FieldError(f"$.{e['key']}" if e.get("key") else "$", str(e.get("message", "invalid")))
        for e in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(e, dict)
    ]
    return InvalidRequest("the request is invalid", errors=errors or None)


def _from_http(exc: HTTPException) -> ApiError:
    kind = _HTTP.get(exc.status_code)
    headers = dict(exc.headers or {})
    if kind is not None:
        return kind(exc.detail, headers=headers)
    error = ApiError(exc.detail if exc.status_code < 500 else None, code="http_error", headers=headers)
    error.status, error.title = exc.status_code, "HTTP error"
    return error


def _from_outage(exc: Exception) -> ApiError:
    # A dependency is down (restart, failover): tell clients to retry instead of a bare 500.
    log.warning("dependency unavailable", extra={"error": type(exc).__name__})
    return ServiceUnavailable("a backing service is briefly unavailable; retry shortly", headers={"Retry-After": "5"})


# Litestar's own HTTP errors (malformed bodies, unknown routes, wrong methods, body limits), by status.
_HTTP: dict[int, type[ApiError]] = {k.status: k for k in (BadRequest, NotFound, MethodNotAllowed, PayloadTooLarge)}

# Foreign exception type -> how to render it. Checked in order; first isinstance match wins.
_FOREIGN: list[tuple[type[Exception], Any]] = [
    (SpecError, _from_spec_error),
    (PipelineError, _from_pipeline_error),
    (ValidationException, _from_validation),
    (HTTPException, _from_http),
    *((kind, _from_outage) for kind in TRANSIENT),
]


def problem_response(request: Request, exc: Exception) -> Response[Problem]:
    error = exc if isinstance(exc, ApiError) else None
    if error is None:
        for kind, convert in _FOREIGN:
            if isinstance(exc, kind):
                error = convert(exc)
                break
    if error is None:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error", extra={"incident": incident, "path": request.url.path})
        error = ApiError(f"an internal error occurred (incident {incident})")
    body = Problem(
        type=TYPE_BASE + error.code,
        title=error.title,
        status=error.status,
        detail=error.detail,
        instance=request.url.path,
        code=error.code,
        errors=error.errors,
    )
    return Response(body, status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers)
