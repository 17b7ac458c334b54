"""Python client for PixelFlow: ``Client``/``AsyncClient`` for the API, ``verify`` for webhooks."""

from pixelflow_client.client import AsyncClient, Client
from pixelflow_client.errors import (
    Conflict,
    Forbidden,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PixelFlowError,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    WebhookVerificationError,
)
from pixelflow_client.models import (
    Delivery,
    Job,
    JobPage,
    Template,
    TemplateDiff,
    TemplateVersion,
    Validation,
    Variant,
    WebhookEvent,
)
from pixelflow_client.webhooks import verify

__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "Delivery",
    "Forbidden",
    "Job",
    "JobFailed",
    "JobPage",
    "NotFound",
    "PayloadTooLarge",
    "PixelFlowError",
    "RateLimited",
    "Template",
    "TemplateDiff",
    "TemplateVersion",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "Validation",
    "Variant",
    "WebhookEvent",
    "WebhookVerificationError",
    "verify",
]
