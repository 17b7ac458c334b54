"""Browser sessions for the dashboard: the cookie, its CSRF token, and who it belongs to.

The session cookie (``pixelflow_session``) holds a random token and nothing else: HttpOnly (no
script reads it), SameSite=Lax (not sent on cross-site subrequests or form posts), Secure when
the dashboard is served over HTTPS, and as long-lived as the session row it names. The server
decides: logout, expiry and disabling a user revoke the row, and the cookie is then worthless.

Every state-changing request made with a session must carry ``X-CSRF-Token``, the session's own
token, which the server writes into each page it renders (synchronizer token). A cross-site
page can neither read that token nor set the header. Before sign-in, the forms use a
double-submit token instead: a random ``pixelflow_csrf`` cookie, also written into the page.

A browser that signed in carries ``pixelflow_device`` too (control_plane/auth/devices.py): HttpOnly,
SameSite=Strict, sent only to ``/auth``, and kept across sign-out, so the device stays known.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

from litestar import Request, Response
from litestar.datastructures import Cookie

from control_plane.auth.devices import DEVICE_LIFETIME
from control_plane.deps import ApiDeps
from control_plane.problems import CsrfFailed, Forbidden, Unauthorized
from infra.repo import Session

__all__ = [
    "CSRF_HEADER",
    "DEVICE_COOKIE",
    "PRE_SESSION_COOKIE",
    "SESSION_COOKIE",
    "check_csrf",
    "current_session",
    "device_cookie",
    "end_session_cookies",
    "pre_session_token",
    "require_session",
    "session_cookie",
]

SESSION_COOKIE = "pixelflow_session"
PRE_SESSION_COOKIE = "pixelflow_csrf"
DEVICE_COOKIE = "pixelflow_device"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _secure(request: Request, deps: ApiDeps) -> bool:
    # Behind a TLS-terminating proxy the request arrives as http; PUBLIC_BASE_URL says what users see.
    return request.url.scheme == "https" or deps.settings.public_base_url.startswith("https://")


def session_cookie(request: Request, deps: ApiDeps, token: str, expires_at: datetime) -> Cookie:
    max_age = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    return Cookie(
        key=SESSION_COOKIE, value=token, max_age=max_age, httponly=True, samesite="lax",
        secure=_secure(request, deps), path="/",
    )  # fmt: skip


def device_cookie(request: Request, deps: ApiDeps, token: str) -> Cookie:
    return Cookie(
        key=DEVICE_COOKIE, value=token, max_age=int(DEVICE_LIFETIME.total_seconds()), httponly=True,
        samesite="strict", secure=_secure(request, deps), path="/auth",
    )  # fmt: skip


def end_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def pre_session_token(request: Request, deps: ApiDeps, response_cookies: list[Cookie]) -> str:
    """The sign-in and sign-up forms' CSRF token: the browser's ``pixelflow_csrf`` cookie, set now if absent."""
    token = request.cookies.get(PRE_SESSION_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
        secure = _secure(request, deps)
        response_cookies.append(
            Cookie(key=PRE_SESSION_COOKIE, value=token, httponly=True, samesite="strict", secure=secure, path="/")
        )
    return token


def check_csrf(request: Request, expected: str | None) -> None:
    """403 ``csrf_failed`` unless the request is safe or carries ``expected`` in ``X-CSRF-Token``."""
    if request.method in _SAFE:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed(f"send the page's CSRF token in the {CSRF_HEADER} header")


async def current_session(request: Request, deps: ApiDeps) -> Session | None:
    """The live session the cookie names (CSRF not checked: for rendering pages)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    return await deps.users.session(token)


async def require_session(request: Request, deps: ApiDeps, *, owner: bool = False) -> Session:
    """The request's session, its CSRF token checked on state-changing methods; 401 without one."""
    session = await current_session(request, deps)
    if session is None:
        raise Unauthorized("sign in to the dashboard, or send 'Authorization: Bearer <api key>'")
    check_csrf(request, session.csrf_token)
    if owner and session.user.role != "owner":
        raise Forbidden("only the client's owners may do this", code="owner_only")
    return session
