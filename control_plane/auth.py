"""Bearer API keys. A missing, malformed, unknown or revoked key is the same 401."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from control_plane.deps import ApiDepsDep
from control_plane.problems import Unauthorized
from infra.repo import Client

__all__ = ["Principal", "PrincipalDep", "provide_principal"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pixelflow"'}


@dataclass(frozen=True, slots=True)
class Principal:
    client: Client
    key_id: uuid.UUID


async def provide_principal(request: Request, services: ApiDepsDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 200:
        raise Unauthorized("send 'Authorization: Bearer <api key>'", headers=_CHALLENGE)
    found = await services.clients.authenticate(key)
    if found is None:
        raise Unauthorized("the API key is unknown or revoked", headers=_CHALLENGE)
    return Principal(*found)


PrincipalDep = NamedDependency[Principal]
