"""Who is asking: a bearer API key (machines), or a dashboard session cookie (people; see
sessions.py). A missing, malformed, unknown or revoked key is the same 401. Both reach the same
routes and job flow, scoped to one client.

A key may be scoped (infra.keys.SCOPES): a route names the scope it needs in its ``opt``
(``needs("jobs:write")``), checked here before the handler runs, so no handler can forget it.
A presets-only key never holds ``templates:write`` (infra.keys.NOT_FOR_PRESETS_ONLY), whatever it
was made with. People signed in to the dashboard act with full access for their client.

Limits count per client, shared by its keys and people (control_plane.jobflow.intake.rate_limit); a key
may carry a lower limit of its own, which its requests must pass as well."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from control_plane.auth.sessions import SESSION_COOKIE, require_session
from control_plane.deps import ApiDepsDep
from control_plane.problems import Forbidden, Unauthorized
from infra.keys import NOT_FOR_PRESETS_ONLY, SCOPES
from infra.repo import Client, User

__all__ = ["SCOPE_OPT", "Principal", "PrincipalDep", "needs", "provide_principal"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pixelflow"'}
SCOPE_OPT = "scope"


def needs(scope: str) -> dict[str, str]:
    """A route handler's ``opt`` entry naming the scope a scoped key must hold to call it."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return {SCOPE_OPT: scope}


@dataclass(frozen=True, slots=True)
class Principal:
    client: Client
    key_id: uuid.UUID | None  # None: a person signed in to the dashboard
    user: User | None = None
    scopes: frozenset[str] | None = None  # None: full access
    presets_only: bool = False  # jobs only from templates (control_plane.templates.presets enforces it)
    key_rate_limit: int | None = None  # the key's own job creations per minute, under the client's


async def provide_principal(request: Request, deps: ApiDepsDep) -> Principal:
    header = request.headers.get("authorization")
    if header is None and SESSION_COOKIE in request.cookies:
        session = await require_session(request, deps)  # checks CSRF on state-changing requests
        user = session.user
        return Principal(Client(user.client_id, user.client_name), None, user)
    scheme, _, key = (header or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 200:
        raise Unauthorized("send 'Authorization: Bearer <api key>'", headers=_CHALLENGE)
    grant = await deps.clients.authenticate(key)
    if grant is None:
        raise Unauthorized("the API key is unknown or revoked", headers=_CHALLENGE)
    scope = request.route_handler.opt.get(SCOPE_OPT)
    if scope is not None and grant.scopes is not None and scope not in grant.scopes:
        if grant.presets_only and scope in NOT_FOR_PRESETS_ONLY:
            raise Forbidden(f"a presets-only API key never holds the {scope!r} scope", code="presets_only")
        raise Forbidden(f"this API key lacks the {scope!r} scope", code="insufficient_scope")
    return Principal(grant.client, grant.key_id, None, grant.scopes, grant.presets_only, grant.rate_limit_per_minute)


PrincipalDep = NamedDependency[Principal]
