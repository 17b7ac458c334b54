"""``pixelflow users``: dashboard accounts, for operators (with sign-up closed, the only way in).
Passwords are read from a prompt, or from stdin when it is not a terminal; never from a flag,
which would leave them in shell history and ``ps`` output."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.output import emit, json_option

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="dashboard accounts")
    u_sub = users.add_subparsers(dest="users_command", required=True)
    create = u_sub.add_parser(
        "create", help="add a person to a client; the password is prompted for (or read from stdin)"
    )
    create.add_argument("email")
    create.add_argument("--client", required=True, help="the client's name (`pixelflow clients create` makes one)")
    create.add_argument("--role", choices=("owner", "member"), default="member")
    json_option(create)
    create.set_defaults(handler=cmd_users_create)
    listing = u_sub.add_parser("list", help="list accounts")
    listing.add_argument("--client")
    json_option(listing)
    listing.set_defaults(handler=cmd_users_list)
    disable = u_sub.add_parser("disable", help="disable an account and end its sessions at once")
    disable.add_argument("email")
    json_option(disable)
    disable.set_defaults(handler=cmd_users_disable)


def _record(u: Any) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "client": u.client_name, "role": u.role,
            "created_at": u.created_at, "disabled_at": u.disabled_at}  # fmt: skip


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            print("pixelflow: the passwords differ", file=sys.stderr)
            raise SystemExit(1)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users_create(args: argparse.Namespace) -> int:
    from psycopg.errors import UniqueViolation

    from cli.operations import _client, _with_pool
    from infra.passwords import hash_password, password_problem
    from infra.repo import ClientRepo, UserRepo

    password = _read_password()
    if problem := password_problem(password, args.email):
        print(f"pixelflow: password refused: {problem}", file=sys.stderr)
        return 1

    async def work(pool: Any) -> int:
        client = await _client(ClientRepo(pool), args.client)
        try:
            user = await UserRepo(pool).create(client.id, args.email, hash_password(password), args.role)
        except UniqueViolation:
            print(f"pixelflow: {args.email} already has an account", file=sys.stderr)
            return 1
        emit(args.json, _record(user), f"user {user.email} ({user.role} of {user.client_name}) {user.id}")
        return 0

    return _with_pool(work)


def cmd_users_list(args: argparse.Namespace) -> int:
    from cli.operations import _client, _with_pool
    from infra.repo import ClientRepo, UserRepo

    async def work(pool: Any) -> int:
        client_id = (await _client(ClientRepo(pool), args.client)).id if args.client else None
        users = await UserRepo(pool).list(client_id)
        lines = [
            f"{u.email:<32} {u.client_name:<20} {u.role:<6} "
            + (f"disabled {u.disabled_at:%Y-%m-%d}" if u.disabled_at else "active")
            for u in users
        ]
        emit(args.json, {"users": [_record(u) for u in users]}, lines)
        return 0

    return _with_pool(work)


def cmd_users_disable(args: argparse.Namespace) -> int:
    from cli.operations import _with_pool
    from infra.repo import UserRepo

    async def work(pool: Any) -> int:
        if await UserRepo(pool).disable(args.email):
            emit(args.json, {"email": args.email.strip().lower(), "disabled": True}, f"disabled {args.email}")
            return 0
        print(f"pixelflow: no active account {args.email}", file=sys.stderr)
        return 1

    return _with_pool(work)
