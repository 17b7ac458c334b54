"""Every API call described once, as data; ``Client`` and ``AsyncClient`` only send them."""

from __future__ import annotations

import builtins
import email.utils
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from pixelflow_client.errors import BY_CODE, BY_STATUS, PixelFlowError
from pixelflow_client.models import (
    Delivery,
    Job,
    JobPage,
    Template,
    TemplateDiff,
    TemplateVersion,
    Upload,
    Usage,
    Validation,
)

__all__ = ["Call", "backoff", "calls", "check", "parse", "retry_after"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request, and the type its answer decodes to (what ``Client._send`` returns)."""

    method: str
    path: str
    model: type[T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # safe to send again after a 429/503: reads, and writes the API makes idempotent
    retry: bool = True


def _jid(job_id: uuid.UUID | str) -> str:
    return str(uuid.UUID(str(job_id)))


class calls:
    @staticmethod
    def create(spec: dict[str, Any], idempotency_key: str | None) -> Call[Job]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Call("POST", "/v1/jobs", Job, json=spec, headers=headers, retry=idempotency_key is not None)

    @staticmethod
    def start(job_id: uuid.UUID | str) -> Call[Job]:
        return Call("POST", f"/v1/jobs/{_jid(job_id)}/start", Job)  # starting twice is harmless

    @staticmethod
    def get(job_id: uuid.UUID | str) -> Call[Job]:
        return Call("GET", f"/v1/jobs/{_jid(job_id)}", Job)

    @staticmethod
    def list(status: str | None, limit: int, cursor: str | None) -> Call[JobPage]:
        params = {k: v for k, v in {"status": status, "limit": limit, "cursor": cursor}.items() if v is not None}
        return Call("GET", "/v1/jobs", JobPage, params=params)

    @staticmethod
    def cancel(job_id: uuid.UUID | str) -> Call[Job]:
        return Call("POST", f"/v1/jobs/{_jid(job_id)}/cancel", Job)

    @staticmethod
    def deliveries(job_id: uuid.UUID | str) -> Call[builtins.list[Delivery]]:  # `list` here is the method above
        return Call("GET", f"/v1/jobs/{_jid(job_id)}/deliveries", list[Delivery])

    @staticmethod
    def redeliver(job_id: uuid.UUID | str) -> Call[Delivery]:
        return Call("POST", f"/v1/jobs/{_jid(job_id)}/deliveries/redeliver", Delivery, retry=False)

    @staticmethod
    def asset(key: str) -> Call[_AssetUpload]:
        return Call("POST", "/v1/assets", _AssetUpload, json={"key": key})

    @staticmethod
    def validate(spec: dict[str, Any], source: dict[str, Any] | None) -> Call[Validation]:
        body = {"spec": spec, **({"source": source} if source else {})}
        return Call("POST", "/v1/specs/validate", Validation, json=body)

    @staticmethod
    def save_template(name: str, spec: dict[str, Any], parameters: dict[str, Any] | None) -> Call[TemplateVersion]:
        body = {"name": name, "spec": spec, "parameters": parameters or {}}
        return Call("POST", "/v1/templates", TemplateVersion, json=body)  # saving the same again is a no-op

    @staticmethod
    def template(name: str) -> Call[Template]:
        return Call("GET", f"/v1/templates/{name}", Template)

    @staticmethod
    def template_diff(name: str, from_version: int | None, to_version: int | None) -> Call[TemplateDiff]:
        params = {k: v for k, v in (("from", from_version), ("to", to_version)) if v is not None}
        return Call("GET", f"/v1/templates/{name}/diff", TemplateDiff, params=params)

    @staticmethod
    def limits() -> Call[dict[str, Any]]:
        return Call("GET", "/v1/limits", dict[str, Any])

    @staticmethod
    def usage(start: date | str | None, end: date | str | None) -> Call[Usage]:
        params = {k: str(v) for k, v in {"from": start, "to": end}.items() if v is not None}
        return Call("GET", "/v1/usage", Usage, params=params)

    @staticmethod
    def templates() -> Call[_TemplateList]:
        return Call("GET", "/v1/templates", _TemplateList)


class _TemplateSummary(msgspec.Struct):
    name: str
    latest_version: int


class _TemplateList(msgspec.Struct):
    templates: list[_TemplateSummary]


class _AssetUpload(msgspec.Struct):
    key: str
    upload: Upload


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())


def check(response: httpx.Response) -> None:
    """Raise the typed error for a problem+json answer (or any other error status)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") or f"http_{response.status_code}"
    cls = BY_CODE.get(code) or BY_STATUS.get(response.status_code, PixelFlowError)
    raise cls(
        response.status_code,
        code,
        body.get("detail"),
        title=body.get("title"),
        errors=body.get("errors"),
        retry_after=retry_after(response),
    )


def parse(call: Call[T], response: httpx.Response) -> T:
    check(response)
    return msgspec.json.decode(response.content, type=call.model)


def backoff(attempt: int, *, base: float = 0.25, cap: float = 5.0) -> float:
    return min(cap, base * 2.0**attempt)
