"""``pixelflow db|clients|keys`` against the real database, run as an operator runs them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from devstack.servers import free_port
from tests.integration.conftest import PIXELFLOW, ApiServer, Stack

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


def _without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLOW_")}


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Failing to reach the database within 2 s is the command's contract, so 2 s is the bound."""
    return subprocess.run([PIXELFLOW, *args], env=env, capture_output=True, text=True, timeout=2, check=False)


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
    for args in (["keys", "list"], ["clients", "create", "acme"], ["db", "migrate"]):
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
    for args in (["keys", "list"], ["db", "migrate"]):
        out = admin(_without_settings() | {"PIXELFLOW_DATABASE_URL": silent}, *args)
        assert (out.returncode, out.stderr) == (
            1,
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
