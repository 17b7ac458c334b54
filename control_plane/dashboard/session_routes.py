"""``/auth``: the dashboard's sign-up, sign-in and sign-out (JSON in, a session cookie out).
Not part of the API's OpenAPI contract: machines use API keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import msgspec
from litestar import Request, Response, post
from litestar.params import JSONBody

from control_plane.auth.peers import client_address
from control_plane.auth.sessions import (
    DEVICE_COOKIE,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    device_cookie,
    end_session_cookies,
    require_session,
    session_cookie,
)
from control_plane.dashboard.accounts import accept_invite, account_key, sign_in, sign_up
from control_plane.deps import ApiDeps, ApiDepsDep
from infra.repo import User
from pipeline.dsl.types import NO_NUL  # PostgreSQL stores no NUL (nor a hash of one: refused alike)

__all__ = ["auth_routes"]

HOME = "/dashboard"


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320, pattern=NO_NUL)]
    password: Annotated[str, msgspec.Meta(max_length=1024, pattern=NO_NUL)]


class Next(msgspec.Struct):
    redirect: str


async def _open_session(request: Request, deps: ApiDeps, user: User, status: int) -> Response[Next]:
    """The session, and this browser known to the account from now on (control_plane/auth/devices.py)."""
    token, expires = await deps.users.open_session(user.id, timedelta(hours=deps.settings.session_hours))
    device = await deps.devices.remember(request.cookies.get(DEVICE_COOKIE), account_key(user.email))
    cookies = [session_cookie(request, deps, token, expires), device_cookie(request, deps, device)]
    return Response(Next(HOME), status_code=status, cookies=cookies)


@post("/auth/signup", status_code=201, include_in_schema=False)
async def signup(request: Request, deps: ApiDepsDep, data: JSONBody[Credentials]) -> Response[Next]:
    check_csrf(request, request.cookies.get(PRE_SESSION_COOKIE))
    user = await sign_up(deps, data.email, data.password, client_address(request))
    return await _open_session(request, deps, user, 201)


@post("/auth/login", status_code=200, include_in_schema=False)
async def login(request: Request, deps: ApiDepsDep, data: JSONBody[Credentials]) -> Response[Next]:
    check_csrf(request, request.cookies.get(PRE_SESSION_COOKIE))
    device = request.cookies.get(DEVICE_COOKIE)
    user = await sign_in(deps, data.email, data.password, client_address(request), device)
    return await _open_session(request, deps, user, 200)


class Acceptance(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
    password: Annotated[str, msgspec.Meta(max_length=1024, pattern=NO_NUL)]


@post("/auth/accept", status_code=201, include_in_schema=False)
async def accept(request: Request, deps: ApiDepsDep, data: JSONBody[Acceptance]) -> Response[Next]:
    """An invited person sets a password and joins the inviting client."""
    check_csrf(request, request.cookies.get(PRE_SESSION_COOKIE))
    user = await accept_invite(deps, data.token, data.password, client_address(request))
    return await _open_session(request, deps, user, 201)


@post("/auth/logout", status_code=200, include_in_schema=False)
async def logout(request: Request, deps: ApiDepsDep) -> Response[Next]:
    await require_session(request, deps)  # a cross-site page cannot sign people out either
    await deps.users.revoke_session(request.cookies[SESSION_COOKIE])
    response = Response(Next(f"{HOME}/login"))
    end_session_cookies(response)
    return response


auth_routes = [signup, login, accept, logout]
