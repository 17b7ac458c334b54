"""People who sign in to the dashboard, and their browser sessions."""

from __future__ import annotations

import builtins  # `list` inside the repository classes is their list() method
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Literal

import msgspec
from psycopg_pool import AsyncConnectionPool

from infra.repo._sql import execute, fetch_all, fetch_one

__all__ = ["INVITE_PREFIX", "SESSION_PREFIX", "Invite", "Role", "Session", "User", "UserRepo", "normal_email"]

Role = Literal["owner", "member"]
# Scrubbed from every log line by infra.logs, like API keys.
SESSION_PREFIX = "pfs_"
INVITE_PREFIX = "pfi_"


def normal_email(email: str) -> str:
    return email.strip().lower()


class User(msgspec.Struct, frozen=True):
    id: uuid.UUID
    client_id: uuid.UUID
    client_name: str
    email: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None


class Session(msgspec.Struct, frozen=True):
    user: User
    csrf_token: str
    expires_at: datetime


class Invite(msgspec.Struct, frozen=True):
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime


_USER = (
    "u.id, u.client_id, c.name AS client_name, u.email, u.role, u.created_at, u.disabled_at"
    " FROM users u JOIN clients c ON c.id = u.client_id"
)

_INSERT_USER = (
    "WITH u AS (INSERT INTO users (id, client_id, email, password_hash, role) VALUES (%s, %s, %s, %s, %s)"
    " RETURNING *) SELECT u.id, u.client_id, c.name AS client_name, u.email, u.role, u.created_at,"
    " u.disabled_at FROM u JOIN clients c ON c.id = u.client_id"
)


def _token_hash(token: str) -> bytes:
    # The token is 256 random bits: a fast hash is enough, and lookups stay an index probe.
    return hashlib.sha256(token.encode()).digest()


class UserRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, client_id: uuid.UUID, email: str, password_hash: str, role: Role) -> User:
        """Raises psycopg's UniqueViolation when the email has an account."""
        row = await fetch_one(
            self.pool, _INSERT_USER, (uuid.uuid4(), client_id, normal_email(email), password_hash, role)
        )
        assert row is not None
        return User(**row)

    async def credentials(self, email: str) -> tuple[User, str] | None:
        """The enabled user with this email and their stored hash."""
        row = await fetch_one(
            self.pool, f"SELECT u.password_hash, {_USER} WHERE u.email = %s AND u.disabled_at IS NULL",
            (normal_email(email),),
        )  # fmt: skip
        if row is None:
            return None
        stored = row.pop("password_hash")
        return User(**row), stored

    async def set_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await execute(self.pool, "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))

    async def list(self, client_id: uuid.UUID | None = None) -> list[User]:
        rows = await fetch_all(
            self.pool,
            f"SELECT {_USER} WHERE %(client)s::uuid IS NULL OR u.client_id = %(client)s ORDER BY u.created_at",
            {"client": client_id},
        )
        return [User(**r) for r in rows]

    async def disable(self, email: str) -> bool:
        """Disable the account and end its sessions at once."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await fetch_one(
                conn,
                "UPDATE users SET disabled_at = now() WHERE email = %s AND disabled_at IS NULL RETURNING id",
                (normal_email(email),),
            )
            if row is None:
                return False
            await conn.execute(
                "UPDATE sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL", (row["id"],)
            )
        return True

    async def open_session(self, user_id: uuid.UUID, lifetime: timedelta) -> tuple[str, datetime]:
        """(the cookie's token, when the session ends)."""
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        row = await fetch_one(
            self.pool,
            "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)"
            " VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
            (_token_hash(token), user_id, secrets.token_urlsafe(32), lifetime.total_seconds()),
        )
        assert row is not None
        return token, row["expires_at"]

    async def session(self, token: str) -> Session | None:
        """The live session for a cookie's token: not revoked, not expired, its user enabled."""
        row = await fetch_one(
            self.pool,
            f"SELECT s.csrf_token, s.expires_at, {_USER} JOIN sessions s ON s.user_id = u.id"
            " WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL",
            (_token_hash(token),),
        )
        if row is None:
            return None
        csrf, expires = row.pop("csrf_token"), row.pop("expires_at")
        return Session(User(**row), csrf, expires)

    async def revoke_session(self, token: str) -> bool:
        changed = await execute(
            self.pool,
            "UPDATE sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
            (_token_hash(token),),
        )
        return changed == 1

    async def invite(
        self, client_id: uuid.UUID, email: str, role: Role, invited_by: uuid.UUID, lifetime: timedelta
    ) -> str:
        """The invitation's token (shown once, in the link); a new invitation replaces a pending one."""
        token = INVITE_PREFIX + secrets.token_urlsafe(32)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM invites WHERE client_id = %s AND email = %s AND accepted_at IS NULL",
                (client_id, normal_email(email)),
            )
            await conn.execute(
                "INSERT INTO invites (token_hash, client_id, email, role, invited_by, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
                (_token_hash(token), client_id, normal_email(email), role, invited_by, lifetime.total_seconds()),
            )
        return token

    async def pending_invites(self, client_id: uuid.UUID) -> builtins.list[Invite]:
        rows = await fetch_all(
            self.pool,
            "SELECT email, role, created_at, expires_at FROM invites"
            " WHERE client_id = %s AND accepted_at IS NULL AND expires_at > now() ORDER BY created_at",
            (client_id,),
        )
        return [Invite(**r) for r in rows]

    async def invitation(self, token: str) -> Invite | None:
        """A pending invitation by its token."""
        row = await fetch_one(
            self.pool,
            "SELECT email, role, created_at, expires_at FROM invites"
            " WHERE token_hash = %s AND accepted_at IS NULL AND expires_at > now()",
            (_token_hash(token),),
        )
        return Invite(**row) if row else None

    async def accept_invite(self, token: str, password_hash: str) -> User | None:
        """The new user, or None for an unknown, used or expired token. Raises psycopg's
        UniqueViolation when the invited email has an account meanwhile."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await fetch_one(
                conn,
                "UPDATE invites SET accepted_at = now() WHERE token_hash = %s AND accepted_at IS NULL"
                " AND expires_at > now() RETURNING client_id, email, role",
                (_token_hash(token),),
            )
            if row is None:
                return None
            user = await fetch_one(
                conn, _INSERT_USER, (uuid.uuid4(), row["client_id"], row["email"], password_hash, row["role"])
            )
        assert user is not None
        return User(**user)
