"""Python client for PixelFlow: ``Client``/``AsyncClient`` for the API, ``verify`` for webhooks,
``image_url``/``srcset`` for signed image URLs."""

from pixelflow_client.client import AsyncClient, Client
from pixelflow_client.errors import (
    Conflict,
    Forbidden,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PixelFlowError,
    QuotaExceeded,
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
    Usage,
    Validation,
    Variant,
    WebhookEvent,
)
from pixelflow_client.urls import image_url, srcset
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
    "QuotaExceeded",
    "RateLimited",
    "Template",
    "TemplateDiff",
    "TemplateVersion",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "Usage",
    "Validation",
    "Variant",
    "WebhookEvent",
    "WebhookVerificationError",
    "image_url",
    "srcset",
    "verify",
]
