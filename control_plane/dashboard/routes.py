"""``/dashboard``: the pages people use, and the few JSON routes only they need (their session,
API keys, team). Jobs, specs, deliveries and usage go through ``/v1`` with the session cookie, so the
dashboard runs the very code machines do. None of this is in the OpenAPI document."""

from __future__ import annotations

import uuid
from datetime import datetime
from html import escape
from typing import Annotated

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from control_plane.auth.sessions import current_session, pre_session_token, require_session
from control_plane.dashboard.accounts import INVITE_LIFETIME, email_errors
from control_plane.dashboard.image_urls import image_url_routes
from control_plane.dashboard.pages import STATIC, page_response
from control_plane.deps import ApiDepsDep
from control_plane.problems import InvalidRequest, NotFound
from infra.lifecycle import JobStatus
from infra.repo import ApiKey
from infra.repo.users import Invite, Role
from pipeline.dsl.types import NO_NUL  # PostgreSQL stores no NUL

__all__ = ["dashboard_routes"]

LOGIN = "/dashboard/login"


async def _page(request: Request, deps: ApiDepsDep, page: str, **fields: str) -> Response[str] | Redirect:
    session = await current_session(request, deps)
    if session is None:
        return Redirect(LOGIN, status_code=303)
    return page_response(page, deps.settings, csrf=session.csrf_token, user=session.user, fields=fields)


async def _public_page(request: Request, deps: ApiDepsDep, page: str) -> Response[str] | Redirect:
    if await current_session(request, deps) is not None:
        return Redirect("/dashboard", status_code=303)
    cookies: list[Cookie] = []
    csrf = pre_session_token(request, deps, cookies)
    return page_response(page, deps.settings, csrf=csrf, user=None, cookies=cookies)


_STATUS_OPTIONS = "".join(f'<option value="{s}">{s}</option>' for s in JobStatus)


@get("/dashboard", include_in_schema=False)
async def jobs_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "jobs", statuses=_STATUS_OPTIONS)


@get("/dashboard/jobs/{job_id:uuid}", include_in_schema=False)
async def job_page(request: Request, deps: ApiDepsDep, job_id: FromPath[uuid.UUID]) -> Response[str] | Redirect:
    return await _page(request, deps, "job", job_id=escape(str(job_id)))


@get("/dashboard/new", include_in_schema=False)
async def new_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "new")


@get("/dashboard/templates", include_in_schema=False)
async def templates_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "templates")


@get("/dashboard/keys", include_in_schema=False)
async def keys_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "keys")


@get("/dashboard/images", include_in_schema=False)
async def images_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "images")


@get("/dashboard/usage", include_in_schema=False)
async def usage_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "usage")


@get("/dashboard/team", include_in_schema=False)
async def team_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _page(request, deps, "team")


@get("/dashboard/invite", include_in_schema=False)
async def invite_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    # The token is in the link's fragment (#pfi_...): browsers never send it, so it stays out of
    # access logs and Referer headers; the page's script posts it.
    cookies: list[Cookie] = []
    csrf = pre_session_token(request, deps, cookies)
    return page_response("invite", deps.settings, csrf=csrf, user=None, cookies=cookies)


@get("/dashboard/login", include_in_schema=False)
async def login_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _public_page(request, deps, "login")


@get("/dashboard/signup", include_in_schema=False)
async def signup_page(request: Request, deps: ApiDepsDep) -> Response[str] | Redirect:
    return await _public_page(request, deps, "signup")


# JSON for the script


class Me(msgspec.Struct):
    email: str
    role: str
    client_id: uuid.UUID
    client_name: str
    expires_at: datetime


class KeyView(msgspec.Struct):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=100, pattern=NO_NUL)] = ""


class CreatedKey(msgspec.Struct):
    key: str  # shown once
    record: KeyView


def _key_view(k: ApiKey) -> KeyView:
    return KeyView(k.id, k.name, k.prefix, k.created_at, k.revoked_at)


@get("/dashboard/api/session", include_in_schema=False)
async def me(request: Request, deps: ApiDepsDep) -> Me:
    s = await require_session(request, deps)
    return Me(s.user.email, s.user.role, s.user.client_id, s.user.client_name, s.expires_at)


@get("/dashboard/api/keys", include_in_schema=False)
async def list_keys(request: Request, deps: ApiDepsDep) -> list[KeyView]:
    s = await require_session(request, deps)
    return [_key_view(k) for k in await deps.clients.list_keys(s.user.client_id)]


@post("/dashboard/api/keys", status_code=201, include_in_schema=False)
async def create_key(request: Request, deps: ApiDepsDep, data: JSONBody[NewKey]) -> CreatedKey:
    s = await require_session(request, deps, owner=True)
    record, key = await deps.clients.create_key(s.user.client_id, data.name.strip())
    return CreatedKey(key, _key_view(record))


@post("/dashboard/api/keys/{key_id:uuid}/revoke", status_code=200, include_in_schema=False)
async def revoke_key(request: Request, deps: ApiDepsDep, key_id: FromPath[uuid.UUID]) -> KeyView:
    s = await require_session(request, deps, owner=True)
    if not await deps.clients.revoke_key(key_id, s.user.client_id):
        raise NotFound("no such active key")
    keys = await deps.clients.list_keys(s.user.client_id)
    return _key_view(next(k for k in keys if k.id == key_id))


class Member(msgspec.Struct):
    email: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


class NewInvite(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320, pattern=NO_NUL)]
    role: Role = "member"


class CreatedInvite(msgspec.Struct):
    link: str  # path and fragment; shown once
    invite: Invite


@get("/dashboard/api/members", include_in_schema=False)
async def members(request: Request, deps: ApiDepsDep) -> list[Member]:
    s = await require_session(request, deps)
    return [Member(u.email, u.role, u.created_at, u.disabled_at) for u in await deps.users.list(s.user.client_id)]


@get("/dashboard/api/invites", include_in_schema=False)
async def list_invites(request: Request, deps: ApiDepsDep) -> list[Invite]:
    s = await require_session(request, deps, owner=True)
    return await deps.users.pending_invites(s.user.client_id)


@post("/dashboard/api/invites", status_code=201, include_in_schema=False)
async def create_invite(request: Request, deps: ApiDepsDep, data: JSONBody[NewInvite]) -> CreatedInvite:
    s = await require_session(request, deps, owner=True)
    if errors := email_errors(data.email):
        raise InvalidRequest("check the highlighted fields", errors=errors)
    token = await deps.users.invite(s.user.client_id, data.email, data.role, s.user.id, INVITE_LIFETIME)
    invite = await deps.users.invitation(token)
    assert invite is not None
    return CreatedInvite(f"/dashboard/invite#{token}", invite)


class NewSecret(msgspec.Struct):
    secret: str  # shown once
    previous_valid_hours: float


@post("/dashboard/api/webhook-secret", status_code=201, include_in_schema=False)
async def rotate_webhook_secret(request: Request, deps: ApiDepsDep) -> NewSecret:
    """What ``pixelflow clients rotate-secret`` does: a new signing secret, shown once; the
    previous ones keep verifying for a day while receivers switch. A client made by sign-up gets
    its first usable secret this way."""
    s = await require_session(request, deps, owner=True)
    return NewSecret(await deps.clients.rotate_secret(s.user.client_id, grace_hours=24), 24)


dashboard_routes = Router(
    "/",
    route_handlers=[
        jobs_page, job_page, new_page, templates_page, keys_page, images_page, usage_page, team_page, invite_page,
        login_page, signup_page, me, list_keys, create_key, revoke_key, members, list_invites, create_invite,
        rotate_webhook_secret, *image_url_routes,
        create_static_files_router("/dashboard/static", directories=[STATIC], include_in_schema=False,
                                   name="dashboard-static"),
    ],
    include_in_schema=False,
)  # fmt: skip
