"""Errors carry the API's RFC 9457 problem fields: ``status``, ``code``, ``detail``, ``errors``."""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "Forbidden",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PixelFlowError",
    "QuotaExceeded",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "WebhookVerificationError",
]


class PixelFlowError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title or ''}".rstrip(": "))
        self.status, self.code, self.detail, self.title = status, code, detail, title
        self.errors = errors or []  # [{"path": "$.pipeline[0].width", "message": ...}, ...]
        self.retry_after = retry_after


class Unauthorized(PixelFlowError): ...


class Forbidden(PixelFlowError):
    """403: the key lacks the route's scope (``insufficient_scope``) or may use templates only (``presets_only``)."""


class NotFound(PixelFlowError): ...


class Conflict(PixelFlowError): ...


class PayloadTooLarge(PixelFlowError): ...


class UnsupportedMediaType(PixelFlowError): ...


class Unprocessable(PixelFlowError):
    """The spec (or another input) is invalid: ``errors`` names every field."""


class RateLimited(PixelFlowError):
    """429: ``retry_after`` says when to try again (``wait`` and ``submit`` do it for you)."""


class QuotaExceeded(PixelFlowError):
    """429 ``daily_quota_exceeded`` (source megapixels) or ``daily_cpu_quota_exceeded`` (engine
    CPU seconds): your client's daily quota is spent until midnight UTC (``retry_after``); ``code``
    says which. Never retried for you: that would wait for hours."""


class Unavailable(PixelFlowError):
    """503: a backing service is briefly down; retry after ``retry_after``."""


BY_STATUS: dict[int, type[PixelFlowError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}
BY_CODE: dict[str, type[PixelFlowError]] = {  # before BY_STATUS
    "daily_quota_exceeded": QuotaExceeded,
    "daily_cpu_quota_exceeded": QuotaExceeded,
}


class JobFailed(Exception):
    """The job ended ``failed`` or ``canceled``; ``job`` is its final state."""

    def __init__(self, job: Any) -> None:
        reason = f"{job.error.code}: {job.error.message}" if job.error else job.status
        super().__init__(f"job {job.id} {job.status} ({reason})")
        self.job = job


class WebhookVerificationError(Exception):
    pass
