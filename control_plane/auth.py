"""Who is asking: a bearer API key (machines), or a dashboard session cookie (people; see
sessions.py). A missing, malformed, unknown or revoked key is the same 401. Both reach the same
routes and services, scoped to one client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from control_plane.deps import ApiDepsDep
from control_plane.problems import Unauthorized
from control_plane.sessions import SESSION_COOKIE, require_session
from infra.repo import Client, User

__all__ = ["Principal", "PrincipalDep", "provide_principal"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pixelflow"'}


@dataclass(frozen=True, slots=True)
class Principal:
    client: Client
    key_id: uuid.UUID | None  # None: a person signed in to the dashboard
    user: User | None = None

    @property
    def rate_key(self) -> str:
        """What per-caller limits count: the API key, or the signed-in person."""
        return str(self.key_id) if self.key_id is not None else f"user:{self.user.id if self.user else ''}"


async def provide_principal(request: Request, services: ApiDepsDep) -> Principal:
    header = request.headers.get("authorization")
    if header is None and SESSION_COOKIE in request.cookies:
        session = await require_session(request, services)  # checks CSRF on state-changing requests
        user = session.user
        return Principal(Client(user.client_id, user.client_name), None, user)
    scheme, _, key = (header or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 200:
        raise Unauthorized("send 'Authorization: Bearer <api key>'", headers=_CHALLENGE)
    found = await services.clients.authenticate(key)
    if found is None:
        raise Unauthorized("the API key is unknown or revoked", headers=_CHALLENGE)
    return Principal(*found)


PrincipalDep = NamedDependency[Principal]
