"""``pixelflow users create|list|disable`` as an operator runs them, and what they do to the
dashboard: the account signs in, and disabling it ends its sessions at once."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import httpx
import pytest

from tests.integration.conftest import PIXELFLOW, ApiServer, Stack
from tests.security.test_dashboard_auth import _address, _page_token, sign_in

pytestmark = pytest.mark.integration

PASSWORD = "operator chose this one"


def cli(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env}
    return subprocess.run([PIXELFLOW, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def test_an_operator_manages_accounts(stack: Stack, api: ApiServer) -> None:
    client = f"acme-{uuid.uuid4().hex[:6]}"
    email = f"Grace-{uuid.uuid4().hex[:6]}@Example.com"
    assert cli(stack, "clients", "create", client).returncode == 0

    weak = cli(stack, "users", "create", email, "--client", client, stdin="short\n")
    assert weak.returncode == 1 and weak.stderr == "pixelflow: password refused: use at least 10 characters\n"
    missing = cli(stack, "users", "create", email, "--client", "no-such-client", stdin=PASSWORD + "\n")
    assert missing.returncode == 1 and "no client named 'no-such-client'" in missing.stderr

    made = cli(stack, "users", "create", email, "--client", client, "--role", "owner", "--json", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    record = json.loads(made.stdout)
    assert record["email"] == email.lower() and record["role"] == "owner" and record["client"] == client
    assert PASSWORD not in made.stdout + made.stderr
    again = cli(stack, "users", "create", email.lower(), "--client", client, stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "already has an account" in again.stderr

    listed = json.loads(cli(stack, "users", "list", "--client", client, "--json").stdout)["users"]
    assert [u["email"] for u in listed] == [email.lower()] and listed[0]["disabled_at"] is None
    assert email.lower() in cli(stack, "users", "list").stdout

    # the account signs in (any case of the address) and its session works
    browser = httpx.Client(base_url=api.url, headers={"X-Forwarded-For": _address()}, timeout=30)
    token = _page_token(browser, "/dashboard/login")
    r = browser.post(
        "/auth/login", json={"email": email.upper(), "password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 200, r.text
    assert browser.get("/dashboard/api/session").json()["client_name"] == client

    disabled = cli(stack, "users", "disable", email, "--json")
    assert json.loads(disabled.stdout) == {"email": email.lower(), "disabled": True}
    assert browser.get("/dashboard/api/session").status_code == 401  # its session ended with it
    refused = sign_in(api.url, email, PASSWORD, _address())
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_credentials"
    assert cli(stack, "users", "disable", email).returncode == 1
    listed = json.loads(cli(stack, "users", "list", "--client", client, "--json").stdout)["users"]
    assert listed[0]["disabled_at"] is not None
    browser.close()
