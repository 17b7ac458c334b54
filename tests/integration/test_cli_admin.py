"""``pixelflow db|clients|keys`` against the real database, run as an operator runs them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest

from devstack.backing_services import free_port
from tests.integration.conftest import PIXELFLOW, ApiServer, Stack
from tests.timing import SLACK

pytestmark = pytest.mark.integration


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env}
    return subprocess.run([PIXELFLOW, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_client_and_key_lifecycle(stack: Stack, api: ApiServer) -> None:
    assert cli(stack, "db", "migrate").stdout.strip() == "the schema is up to date"
    created = cli(stack, "clients", "create", "acme-cli")
    assert created.returncode == 0, created.stderr
    assert re.search(r"webhook secret \(shown once\): whsec_\S+", created.stdout)
    twice = cli(stack, "clients", "create", "acme-cli")
    assert (twice.returncode, twice.stderr) == (1, "pixelflow: a client named 'acme-cli' already exists\n")

    made = cli(stack, "keys", "create", "acme-cli", "--name", "ci")
    key = re.search(r"API key \(shown once\): (pf_\S+)", made.stdout).group(1)
    key_id = re.search(r"key ([0-9a-f-]{36})", made.stdout).group(1)
    listing = cli(stack, "keys", "list", "--client", "acme-cli").stdout
    assert key_id in listing and "active" in listing and key not in listing and key[:10] in listing

    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert (await http.get("/v1/jobs")).status_code == 200
        assert cli(stack, "keys", "revoke", key_id).returncode == 0
        assert (await http.get("/v1/jobs")).status_code == 401
    assert "revoked" in cli(stack, "keys", "list", "--client", "acme-cli").stdout
    assert cli(stack, "keys", "revoke", key_id).returncode == 1

    rotated = cli(stack, "clients", "rotate-secret", "acme-cli")
    assert "new webhook secret (shown once): whsec_" in rotated.stdout
    assert cli(stack, "keys", "create", "no-such-client").returncode == 1


def cli_json(stack: Stack, *args: str) -> Any:
    """``args --json``: exit 0, nothing on stderr, and stdout exactly one JSON document."""
    out = cli(stack, *args, "--json")
    assert (out.returncode, out.stderr) == (0, ""), (args, out.stderr)
    return json.loads(out.stdout)  # raises on anything before or after the one document


def refused(stack: Stack, *args: str) -> str:
    """``args --json`` that fails: exit 1, nothing on stdout; the one stderr line."""
    out = cli(stack, *args, "--json")
    assert (out.returncode, out.stdout, out.stderr.count("\n")) == (1, "", 1), (args, out)
    return out.stderr


async def test_admin_commands_print_one_json_document(stack: Stack, api: ApiServer) -> None:
    assert cli_json(stack, "db", "migrate") == {"applied": []}
    client = cli_json(stack, "clients", "create", "acme-json")
    assert set(client) == {"id", "name", "webhook_secret"} and client["name"] == "acme-json"
    assert uuid.UUID(client["id"]) and client["webhook_secret"].startswith("whsec_")
    assert refused(stack, "clients", "create", "acme-json") == "pixelflow: a client named 'acme-json' already exists\n"

    made = cli_json(stack, "keys", "create", "acme-json", "--name", "ci")
    assert set(made) == {"id", "client", "prefix", "name", "created_at", "revoked_at", "scopes", "presets_only",
                         "rate_limit_per_minute", "key"}  # fmt: skip
    assert (made["scopes"], made["presets_only"]) == (None, False)  # full access unless --scope is given
    assert (made["client"], made["name"], made["revoked_at"]) == ("acme-json", "ci", None)
    assert made["key"].startswith("pf_") and made["key"].startswith(made["prefix"]) and len(made["key"]) > 20
    listed = {k: v for k, v in made.items() if k != "key"}  # the key itself is shown once, never listed
    assert cli_json(stack, "keys", "list", "--client", "acme-json") == {"keys": [listed]}
    assert listed in cli_json(stack, "keys", "list")["keys"]

    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {made['key']}"}) as http:
        assert (await http.get("/v1/jobs")).status_code == 200  # the key printed is the key stored
        assert cli_json(stack, "keys", "revoke", made["id"]) == {"id": made["id"], "revoked": True}
        assert (await http.get("/v1/jobs")).status_code == 401
    [after] = cli_json(stack, "keys", "list", "--client", "acme-json")["keys"]
    assert after | {"revoked_at": None} == listed and datetime.fromisoformat(after["revoked_at"])
    assert refused(stack, "keys", "revoke", made["id"]) == f"pixelflow: no active key {made['id']}\n"

    rotated = cli_json(stack, "clients", "rotate-secret", "acme-json", "--grace-hours", "2")
    assert rotated.keys() == {"id", "name", "webhook_secret", "grace_hours"}
    assert (rotated["id"], rotated["name"], rotated["grace_hours"]) == (client["id"], "acme-json", 2.0)
    with psycopg.connect(stack.postgres.url) as conn:
        active = conn.execute(
            "SELECT secret FROM webhook_secrets WHERE client_id = %s AND expires_at IS NULL", (client["id"],)
        ).fetchall()
    assert active == [(rotated["webhook_secret"],)]  # the secret printed is the new one; the old one now expires

    for args in (["keys", "create", "no-such-client"], ["keys", "list", "--client", "no-such-client"],
                 ["clients", "rotate-secret", "no-such-client"]):  # fmt: skip
        assert refused(stack, *args) == "pixelflow: no client named 'no-such-client'\n"


async def test_keys_create_makes_scoped_and_presets_only_keys(stack: Stack, api: ApiServer) -> None:
    cli_json(stack, "clients", "create", "acme-scoped")
    reader = cli_json(stack, "keys", "create", "acme-scoped", "--scope", "jobs:read")
    assert (reader["scopes"], reader["presets_only"]) == (["jobs:read"], False)
    presets = cli_json(stack, "keys", "create", "acme-scoped", "--scope", "jobs:write", "--scope", "jobs:read",
                       "--presets-only")  # fmt: skip
    assert (presets["scopes"], presets["presets_only"]) == (["jobs:write", "jobs:read"], True)
    listing = cli(stack, "keys", "list", "--client", "acme-scoped").stdout
    assert "jobs:read " in listing and "jobs:write,jobs:read presets-only" in listing
    assert cli(stack, "keys", "create", "acme-scoped", "--scope", "everything").returncode == 2  # not a scope
    withheld = cli(stack, "keys", "create", "acme-scoped", "--scope", "templates:write", "--presets-only")
    assert (withheld.returncode, withheld.stderr) == (2, "pixelflow: a presets-only key cannot hold templates:write\n")
    slow = cli_json(stack, "keys", "create", "acme-scoped", "--rate-limit", "5")
    assert (slow["scopes"], slow["rate_limit_per_minute"]) == (None, 5)
    assert " all 5/min" in cli(stack, "keys", "list", "--client", "acme-scoped").stdout
    assert cli(stack, "keys", "create", "acme-scoped", "--rate-limit", "0").returncode == 2
    spec = {"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 10, "format": "png"}]}
    async with httpx.AsyncClient(base_url=api.url) as http:
        as_reader = {"Authorization": f"Bearer {reader['key']}"}
        assert (await http.get("/v1/jobs", headers=as_reader)).status_code == 200
        assert (await http.post("/v1/jobs", json=spec, headers=as_reader)).json()["code"] == "insufficient_scope"
        as_presets = {"Authorization": f"Bearer {presets['key']}"}
        assert (await http.post("/v1/jobs", json=spec, headers=as_presets)).json()["code"] == "presets_only"


def test_db_migrate_json_lists_what_it_applied(stack: Stack) -> None:
    admin_url = stack.postgres.url.rsplit("/", 1)[0]
    with psycopg.connect(admin_url + "/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fresh_json")
        conn.execute("CREATE DATABASE fresh_json")
    env = {**_without_settings(), **stack.env, "PIXELFLOW_DATABASE_URL": admin_url + "/fresh_json"}
    first = admin(env, "db", "migrate", "--json")
    assert (first.returncode, first.stderr) == (0, "")
    applied = json.loads(first.stdout)["applied"]
    assert applied == sorted(applied) and applied[0] == "0001_initial" and len(applied) >= 2
    again = admin(env, "db", "migrate", "--json")
    assert json.loads(again.stdout) == {"applied": []}


def _without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Failing fast on an unreachable database is the command's contract: its one connection
    attempt gives up after 1.2 s (infra.db.probe), so the command ends within that plus starting
    Python on a loaded machine, well before the pool's 30 s wait that the probe is there to avoid."""
    return subprocess.run([PIXELFLOW, *args], env=env, capture_output=True, text=True, timeout=1.2 + SLACK, check=False)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a database behind a black hole."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def test_no_database_url_fails_in_one_line() -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 5432)) == 0:
            pytest.skip("a PostgreSQL listens on the default 127.0.0.1:5432 here")
    for args in (["keys", "list"], ["clients", "create", "acme"], ["db", "migrate"], ["keys", "list", "--json"],
                 ["clients", "create", "acme", "--json"], ["keys", "revoke", str(uuid.uuid4()), "--json"],
                 ["db", "migrate", "--json"]):  # fmt: skip
        out = admin(_without_settings(), *args)
        assert (out.returncode, out.stdout) == (1, ""), args
        assert out.stderr == (
            "pixelflow: cannot connect to the database at 127.0.0.1:5432/pixelflow: Connection refused"
            " (PIXELFLOW_DATABASE_URL is not set; that is its default)\n"
        ), args


def test_unreachable_database_fails_in_one_line(silent_port: int) -> None:
    port = free_port()
    refused = f"postgresql://postgres@127.0.0.1:{port}/pixelflow"
    out = admin(_without_settings() | {"PIXELFLOW_DATABASE_URL": refused}, "keys", "create", "acme")
    assert (out.returncode, out.stderr) == (
        1,
        f"pixelflow: cannot connect to the database at 127.0.0.1:{port}/pixelflow: Connection refused\n",
    )
    silent = f"postgresql://postgres:hunter2@127.0.0.1:{silent_port}/pixelflow"
    for args in (["keys", "list"], ["db", "migrate"], ["keys", "list", "--json"], ["db", "migrate", "--json"]):
        out = admin(_without_settings() | {"PIXELFLOW_DATABASE_URL": silent}, *args)
        assert (out.returncode, out.stdout, out.stderr) == (
            1,
            "",
            f"pixelflow: no answer from the database at 127.0.0.1:{silent_port}/pixelflow within 1.2 s\n",
        ), args  # and the password is not in it
    unknown = "postgresql://postgres@no-such-host.invalid/pixelflow"
    out = admin(_without_settings() | {"PIXELFLOW_DATABASE_URL": unknown}, "keys", "list")
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("pixelflow: cannot connect to the database at no-such-host.invalid:5432/pixelflow: ")


def test_a_database_without_the_schema_says_to_migrate(stack: Stack) -> None:
    with psycopg.connect(stack.postgres.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS unmigrated")
        conn.execute("CREATE DATABASE unmigrated")
    env = {
        **_without_settings(),
        **stack.env,
        "PIXELFLOW_DATABASE_URL": stack.postgres.url.rsplit("/", 1)[0] + "/unmigrated",
    }
    out = admin(env, "keys", "list")
    assert (out.returncode, out.stderr) == (
        1,
        "pixelflow: the database has no PixelFlow tables; run `pixelflow db migrate` first\n",
    )
