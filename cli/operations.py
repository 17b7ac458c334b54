"""Subcommands that run or manage the servers: ``api``, ``worker``, ``db``, ``clients``, ``keys``, ``up``."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from cli.output import emit, json_option, usage_lines
from infra.keys import SCOPES
from infra.policy import POLICY_FIELDS, SWITCH_POLICY_FIELDS, TEXT_POLICY_FIELDS

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    api = sub.add_parser("api", help="run the HTTP API (control plane)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    api.set_defaults(handler=cmd_api)

    worker = sub.add_parser("worker", help="run an image-processing and webhook worker (data plane)")
    worker.add_argument("--burst", action="store_true", help="drain the queues once and exit (the sweepers do not run)")
    worker.set_defaults(handler=cmd_worker)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending SQL migrations")
    json_option(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    clients = sub.add_parser("clients", help="tenants")
    c_sub = clients.add_subparsers(dest="clients_command", required=True)
    create = c_sub.add_parser("create", help="create a client; prints its webhook signing secret once")
    create.add_argument("name")
    json_option(create)
    create.set_defaults(handler=cmd_clients_create)
    rotate = c_sub.add_parser("rotate-secret", help="add a new webhook secret; old ones stay valid for a grace period")
    rotate.add_argument("name")
    rotate.add_argument("--grace-hours", type=float, default=24.0)
    json_option(rotate)
    rotate.set_defaults(handler=cmd_clients_rotate)

    limits = c_sub.add_parser(
        "limits", help="show a client's limits; with options, override the global ones for it (0 resets one)"
    )
    limits.add_argument("name")
    for name in POLICY_FIELDS:
        if name in TEXT_POLICY_FIELDS:  # '' puts it back to the global value
            limits.add_argument(f"--{name.replace('_', '-')}", metavar="TEXT")
        elif name in SWITCH_POLICY_FIELDS:  # 'no' puts it back to the global value (off)
            limits.add_argument(f"--{name.replace('_', '-')}", type=_switch, metavar="yes|no")
        else:
            limits.add_argument(f"--{name.replace('_', '-')}", type=int, metavar="N")
    limits.add_argument("--reset", action="store_true", help="drop every override: the global limits apply")
    json_option(limits)
    limits.set_defaults(handler=cmd_clients_limits)

    signing = c_sub.add_parser("signing-keys", help="keys that sign a client's image URLs (docs/delivery.md)")
    s_sub = signing.add_subparsers(dest="signing_command", required=True)
    s_create = s_sub.add_parser("create", help="create a signing key; prints its id and secret once")
    s_retire = s_sub.add_parser("retire", help="retire a signing key: URLs it signed answer 403")
    s_list = s_sub.add_parser("list", help="a client's signing keys (ids only)")
    for command, handler in (
        (s_create, cmd_signing_create),
        (s_retire, cmd_signing_retire),
        (s_list, cmd_signing_list),
    ):
        command.add_argument("name", help="the client")
        if command is s_retire:
            command.add_argument("kid", help="the key's id (sk_...)")
        json_option(command)
        command.set_defaults(handler=handler)

    usage = c_sub.add_parser("usage", help="a client's usage per UTC day (what GET /v1/usage reports)")
    usage.add_argument("name")
    usage.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day (default: 29 days before --to)")
    usage.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day, included (default: today, UTC)")
    json_option(usage)
    usage.set_defaults(handler=cmd_clients_usage)

    keys = sub.add_parser("keys", help="API keys")
    k_sub = keys.add_subparsers(dest="keys_command", required=True)
    kc = k_sub.add_parser("create", help="create an API key for a client; prints it once")
    kc.add_argument("client")
    kc.add_argument("--name", default="")
    kc.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        help="limit the key to this scope (repeat for several); without --scope the key may do everything",
    )
    kc.add_argument(
        "--presets-only",
        action="store_true",
        help="jobs only from templates, never a free-form spec; never holds templates:write",
    )
    kc.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="this key's own job creations per minute (bursts of N); the client's limit, shared by all its keys,"
        " applies as well",
    )
    json_option(kc)
    kc.set_defaults(handler=cmd_keys_create)
    kl = k_sub.add_parser("list", help="list keys (prefixes only)")
    kl.add_argument("--client")
    json_option(kl)
    kl.set_defaults(handler=cmd_keys_list)
    kr = k_sub.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id", type=uuid.UUID)
    json_option(kr)
    kr.set_defaults(handler=cmd_keys_revoke)

    up = sub.add_parser("up", help="bring the whole stack up on this machine and run a demo job to a webhook")
    up.add_argument(
        "--keep-running", action="store_true", help="leave the stack running after the demo and print how to reach it"
    )
    up.add_argument(
        "--port",
        type=int,
        help="the API's port (default 8000, or a free one if 8000 is taken; a port given here must be free)",
    )
    up.set_defaults(handler=cmd_up)


def _settings() -> Any:
    from infra.logs import configure_logging
    from infra.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"pixelflow: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from control_plane.uvicorn_config import server_config

    settings = _settings()
    if args.workers > 1:
        from control_plane.api.metrics import multiprocess_listener, prepare_multiprocess_dir, remove_multiprocess_dir

        # before any worker process exists: they inherit the variable and report through it
        directory, owned = prepare_multiprocess_dir()
        try:
            with multiprocess_listener(settings, directory):
                config = server_config("cli.operations:app_factory", settings, factory=True, host=args.host,
                                       port=args.port, workers=args.workers)  # fmt: skip
                Multiprocess(config, sockets=[config.bind_socket()]).run()
        finally:
            if owned:
                remove_multiprocess_dir(directory)
        return 0
    from control_plane.app import create_app

    config = server_config(create_app(settings), settings, host=args.host, port=args.port)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def app_factory() -> Any:
    """One of ``--workers N`` processes (spawned: it imports everything afresh)."""
    from control_plane.app import create_app

    return create_app(_settings(), own_metrics_listener=False)


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from data_plane.worker import run_worker

    asyncio.run(run_worker(_settings(), burst=args.burst))
    return 0


def _database_errors(run: Callable[[], int]) -> int:
    """``run()``, with every database failure reported in one line (exit 1), never a traceback."""
    import psycopg

    from infra.db import DatabaseUnreachable

    try:
        return run()
    except DatabaseUnreachable as exc:
        unset = "PIXELFLOW_DATABASE_URL" not in os.environ
        print(f"pixelflow: {exc}" + (" (PIXELFLOW_DATABASE_URL is not set; that is its default)" if unset else ""),
              file=sys.stderr)  # fmt: skip
    except psycopg.errors.UndefinedTable:
        print("pixelflow: the database has no PixelFlow tables; run `pixelflow db migrate` first", file=sys.stderr)
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"pixelflow: database error: {detail}", file=sys.stderr)
    return 1


def cmd_migrate(args: argparse.Namespace) -> int:
    import asyncio

    from infra.db import migrate, probe

    url = _settings().database_url

    def run() -> int:
        asyncio.run(probe(url))
        applied = migrate(url)
        text = "applied: " + ", ".join(applied) if applied else "the schema is up to date"
        emit(args.json, {"applied": applied}, text)
        return 0

    return _database_errors(run)


def _with_pool(work: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``work`` with a small pool of its own, once one connection has answered (so an absent
    database fails in a second, not after the pool's 30 s of retries)."""
    import asyncio

    from infra.db import open_pool, probe

    settings = _settings()

    async def main() -> int:
        await probe(settings.database_url)
        pool = await open_pool(settings.database_url, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return _database_errors(lambda: asyncio.run(main()))


def _with_clients(work: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``work`` with a ``ClientRepo``."""
    from infra.repo import ClientRepo

    return _with_pool(lambda pool: work(ClientRepo(pool)))


async def _client(repo: Any, name: str) -> Any:
    client = await repo.by_name(name)
    if client is None:
        print(f"pixelflow: no client named {name!r}", file=sys.stderr)
        raise SystemExit(1)
    return client


def cmd_clients_create(args: argparse.Namespace) -> int:
    from psycopg.errors import UniqueViolation

    async def work(repo: Any) -> int:
        try:
            client, secret = await repo.create(args.name)
        except UniqueViolation:
            print(f"pixelflow: a client named {args.name!r} already exists", file=sys.stderr)
            return 1
        emit(
            args.json,
            {"id": client.id, "name": client.name, "webhook_secret": secret},
            [f"client {client.name} {client.id}", f"webhook secret (shown once): {secret}"],
        )
        return 0

    return _with_clients(work)


def cmd_clients_rotate(args: argparse.Namespace) -> int:
    async def work(repo: Any) -> int:
        client = await _client(repo, args.name)
        secret = await repo.rotate_secret(client.id, grace_hours=args.grace_hours)
        emit(
            args.json,
            {"id": client.id, "name": client.name, "webhook_secret": secret, "grace_hours": args.grace_hours},
            [f"new webhook secret (shown once): {secret}", f"previous secrets stay valid for {args.grace_hours:g} h"],
        )
        return 0

    return _with_clients(work)


def cmd_clients_limits(args: argparse.Namespace) -> int:
    from infra.policy import ClientPolicy, client_limits, limits_with_spend
    from infra.repo.usage import spent_today

    settings = _settings()

    async def work(repo: Any) -> int:
        client = await _client(repo, args.name)
        given = {name: getattr(args, name) for name in POLICY_FIELDS if getattr(args, name) is not None}
        if given or args.reset:
            current = {} if args.reset else msgspec.structs.asdict(await repo.policy(client.id))
            merged = {**current, **{k: (v or None) for k, v in given.items()}}  # 0 or '': back to the global value
            try:
                policy = msgspec.convert(merged, ClientPolicy)
            except msgspec.ValidationError as exc:
                print(f"pixelflow: {exc}", file=sys.stderr)
                return 1
            await repo.set_policy(client.id, policy)
        limits = client_limits(settings, await repo.policy(client.id))
        today = limits_with_spend(limits, await spent_today(repo.pool, client.id))
        record = {"client": client.name, **msgspec.structs.asdict(today)}
        lines = [f"{client.name}"] + [
            f"  {name:<32} {_limit_text(name, getattr(limits, name)):>12}  "
            f"{'(client)' if name in limits.overridden else '(global)'}"
            for name in POLICY_FIELDS
        ]
        for name, value, note in (
            ("source_megapixels_today", f"{today.source_megapixels_today:,.2f}", "used today, UTC"),
            ("engine_cpu_seconds_today", f"{today.engine_cpu_seconds_today:,.1f}", "used today, UTC"),
            ("deadline_exceeded_today", f"{today.deadline_exceeded_today:,}", "jobs killed at their deadline today"),
        ):
            lines.append(f"  {name:<32} {value:>12}  ({note})")
        emit(args.json, record, lines)
        return 0

    return _with_clients(work)


def cmd_signing_create(args: argparse.Namespace) -> int:
    from infra.repo import SigningKeyRepo

    async def work(repo: Any) -> int:
        client = await _client(repo, args.name)
        key, secret = await SigningKeyRepo(repo.pool).create(client.id)
        emit(
            args.json,
            {"client": client.name, "kid": key.id, "secret": secret, "created_at": key.created_at},
            [f"signing key {key.id} for {client.name}", f"secret (shown once): {secret}"],
        )
        return 0

    return _with_clients(work)


def cmd_signing_retire(args: argparse.Namespace) -> int:
    from infra.repo import SigningKeyRepo

    async def work(repo: Any) -> int:
        client = await _client(repo, args.name)
        if not await SigningKeyRepo(repo.pool).retire(client.id, args.kid):
            print(f"pixelflow: {client.name} has no live signing key {args.kid!r}", file=sys.stderr)
            return 1
        emit(args.json, {"client": client.name, "kid": args.kid, "retired": True}, [f"retired {args.kid}"])
        return 0

    return _with_clients(work)


def cmd_signing_list(args: argparse.Namespace) -> int:
    from infra.repo import SigningKeyRepo

    async def work(repo: Any) -> int:
        client = await _client(repo, args.name)
        keys = await SigningKeyRepo(repo.pool).of_client(client.id)
        records = [{"kid": k.id, "created_at": k.created_at, "retired_at": k.retired_at} for k in keys]
        lines = [f"{k.id}  created {k.created_at:%Y-%m-%d %H:%M}" + (f"  retired {k.retired_at:%Y-%m-%d %H:%M}"
                 if k.retired_at else "") for k in keys]  # fmt: skip
        emit(args.json, records, lines or [f"{client.name} has no signing keys"])
        return 0

    return _with_clients(work)


def cmd_clients_usage(args: argparse.Namespace) -> int:
    from infra.repo import UsageRepo
    from infra.repo.usage import RangeError, report_range

    try:
        first, last = report_range(args.start, args.end)
    except RangeError as exc:
        print(f"pixelflow: --{exc.field}: {exc.message}", file=sys.stderr)
        return 1

    async def work(repo: Any) -> int:
        client = await _client(repo, args.name)
        report = await UsageRepo(repo.pool).report(client.id, first, last)
        emit(args.json, {"client": client.name, **msgspec.to_builtins(report)}, usage_lines(client.name, report))
        return 0

    return _with_clients(work)


def _switch(text: str) -> bool:
    if text.lower() not in ("yes", "no", "true", "false"):
        raise argparse.ArgumentTypeError("expected yes or no")
    return text.lower() in ("yes", "true")


def _limit_text(name: str, value: int | str | None) -> str:
    if value is None:
        return "forever" if name.startswith("retain_") else "none"  # a retention that never expires, no quota
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == "":
        return "any"  # url_widths: no list
    return f"{value:,}" if isinstance(value, int) else value


def _key_record(key: Any) -> dict[str, Any]:
    """A key as ``keys create --json`` and ``keys list --json`` show it: never its hash."""
    return {"id": key.id, "client": key.client_name, "prefix": key.prefix, "name": key.name,
            "created_at": key.created_at, "revoked_at": key.revoked_at,
            "scopes": list(key.scopes) if key.scopes is not None else None, "presets_only": key.presets_only,
            "rate_limit_per_minute": key.rate_limit_per_minute}  # fmt: skip


def cmd_keys_create(args: argparse.Namespace) -> int:
    async def work(repo: Any) -> int:
        client = await _client(repo, args.client)
        scopes = tuple(dict.fromkeys(args.scope)) if args.scope else None
        try:
            key, plaintext = await repo.create_key(
                client.id,
                args.name,
                scopes=scopes,
                presets_only=args.presets_only,
                rate_limit_per_minute=args.rate_limit,
            )
        except ValueError as exc:  # infra.keys.check_grant: e.g. presets-only with templates:write
            print(f"pixelflow: {exc}", file=sys.stderr)
            return 2
        emit(
            args.json,
            _key_record(key) | {"key": plaintext},
            [f"key {key.id} for {client.name} ({key.prefix}…)", f"API key (shown once): {plaintext}"],
        )
        return 0

    return _with_clients(work)


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def work(repo: Any) -> int:
        client_id = (await _client(repo, args.client)).id if args.client else None
        keys = await repo.list_keys(client_id)
        lines = []
        for k in keys:
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            access = ",".join(k.scopes) if k.scopes is not None else "all"
            access += " presets-only" if k.presets_only else ""
            access += f" {k.rate_limit_per_minute}/min" if k.rate_limit_per_minute is not None else ""
            lines.append(f"{k.id}  {k.client_name:<20} {k.prefix}…  {k.name or '-':<16} {state:<18} {access}")
        emit(args.json, {"keys": [_key_record(k) for k in keys]}, lines)
        return 0

    return _with_clients(work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def work(repo: Any) -> int:
        if await repo.revoke_key(args.key_id):
            emit(args.json, {"id": args.key_id, "revoked": True}, f"revoked {args.key_id}")
            return 0
        print(f"pixelflow: no active key {args.key_id}", file=sys.stderr)
        return 1

    return _with_clients(work)


def cmd_up(args: argparse.Namespace) -> int:
    from devstack.demo import run_demo_stack

    return run_demo_stack(keep_running=args.keep_running, port=args.port)
