"""The dashboard's image URL page, its JSON: the client's signing keys (create, shown once;
retire), and a URL builder that signs with the newest live key, so people can try a source and
a template and see the image (docs/delivery.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody

from control_plane.auth.sessions import require_session
from control_plane.delivery.grammar import signed_path
from control_plane.deps import ApiDepsDep
from control_plane.problems import Conflict, InvalidRequest, NotFound
from infra.repo import SigningKey
from pipeline.dsl.types import NO_NUL
from pipeline.errors import FieldError

__all__ = ["image_url_routes"]


class SigningKeyView(msgspec.Struct):
    kid: str
    created_at: datetime
    retired_at: datetime | None


class NewSigningKey(msgspec.Struct):
    secret: str  # shown once
    record: SigningKeyView


Text = Annotated[str, msgspec.Meta(max_length=512, pattern=NO_NUL)]


class UrlRequest(msgspec.Struct, forbid_unknown_fields=True):
    job: uuid.UUID | None = None
    asset: Text | None = None
    template: Text | None = None  # `name`, `name@3` or `name@3:variant`
    width: Annotated[int, msgspec.Meta(ge=1, le=16384)] | None = None
    format: Annotated[str, msgspec.Meta(max_length=16, pattern="^[a-z]+$")] = "auto"


class BuiltUrl(msgspec.Struct):
    url: str  # path from the API's root: /img/...
    kid: str


def _view(k: SigningKey) -> SigningKeyView:
    return SigningKeyView(k.id, k.created_at, k.retired_at)


@get("/dashboard/api/signing-keys", include_in_schema=False)
async def list_signing_keys(request: Request, deps: ApiDepsDep) -> list[SigningKeyView]:
    s = await require_session(request, deps)
    return [_view(k) for k in await deps.signing_keys.of_client(s.user.client_id)]


@post("/dashboard/api/signing-keys", status_code=201, include_in_schema=False)
async def create_signing_key(request: Request, deps: ApiDepsDep) -> NewSigningKey:
    s = await require_session(request, deps, owner=True)
    key, secret = await deps.signing_keys.create(s.user.client_id)
    return NewSigningKey(secret, _view(key))


@post("/dashboard/api/signing-keys/{kid:str}/retire", status_code=200, include_in_schema=False)
async def retire_signing_key(request: Request, deps: ApiDepsDep, kid: FromPath[str]) -> SigningKeyView:
    s = await require_session(request, deps, owner=True)
    if not await deps.signing_keys.retire(s.user.client_id, kid):
        raise NotFound("no such live signing key")
    return next(_view(k) for k in await deps.signing_keys.of_client(s.user.client_id) if k.id == kid)


@post("/dashboard/api/image-url", status_code=200, include_in_schema=False)
async def build_image_url(request: Request, deps: ApiDepsDep, data: JSONBody[UrlRequest]) -> BuiltUrl:
    """Signed with the client's newest live key (the server keeps its secret to verify); what the
    URL then shows is the route's to check, as for any URL."""
    s = await require_session(request, deps)
    live = [k for k in await deps.signing_keys.of_client(s.user.client_id) if k.retired_at is None]
    found = await deps.signing_keys.live(live[-1].id) if live else None
    if not live or found is None:
        raise Conflict("create a signing key first", code="no_signing_key")
    if (data.job is None) == (data.asset is None):
        raise InvalidRequest("name one source: a job or an asset", errors=[FieldError("$", "give `job` or `asset`")])
    source = f"job:{data.job}" if data.job is not None else "asset:" + quote(data.asset or "", safe="")
    options = [f"t:{data.template}"] if data.template else []
    options += [f"w:{data.width}"] if data.width else []
    options.append(f"f:{data.format}")
    return BuiltUrl(signed_path(live[-1].id, found[1], options, source), live[-1].id)


image_url_routes = [list_signing_keys, create_signing_key, retire_signing_key, build_image_url]
