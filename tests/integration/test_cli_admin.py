"""``pixelflow db|clients|keys`` against the real database, run as an operator runs them."""

from __future__ import annotations

import os
import re
import subprocess

import httpx
import pytest

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
    assert cli(stack, "clients", "create", "acme-cli").returncode != 0  # names are unique

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
