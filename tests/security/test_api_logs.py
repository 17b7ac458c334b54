"""Item 6: everything ``pixelflow api`` logs is one scrubbed JSON object per line, and the incident
id a 500 returns is in the logs with its traceback."""

from __future__ import annotations

import json
import uuid

import httpx
import psycopg
import pytest

from devstack.demo import create_client_with_key
from tests.integration.conftest import ISSUED_KEYS, Stack
from tests.integration.test_flow import spec
from tests.security.conftest import ApiProcess, record

pytestmark = pytest.mark.integration

SECRETS = {
    "X-Amz-Signature": "a3f1c0ffeedeadbeefsignature",
    "X-Amz-Credential": "AKIAFAKECREDENTIAL",
    "X-Amz-Security-Token": "FwoGZXIvYXdzEFAKESESSION",
    "sig": "localsig0123456789abcdef",
    "signature": "anothersignature987",
    "token": "tok-very-secret-1",
    "key": "k-very-secret-2",
}


async def test_api_logs_are_scrubbed_json_with_incidents(stack: Stack, api_process: ApiProcess) -> None:
    name = f"logs-{uuid.uuid4().hex[:8]}"
    client, _, key, secret = await create_client_with_key(stack.env["PIXELFLOW_DATABASE_URL"], name, "tests")
    ISSUED_KEYS.extend([key, secret])
    query = "&".join(f"{k}={v}" for k, v in SECRETS.items())
    async with httpx.AsyncClient(base_url=api_process.url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {key}"}
        r = await http.get(f"/v1/jobs?api_key={key}&{query}", headers=auth)
        assert r.status_code < 500
        r = await http.get(f"/v1/jobs?api_key={key}&{query}")
        assert record("API key in the query string, no header", r.status_code) == 401
        r = await http.get(f"/nowhere?{query}")
        assert record("signed query on an unknown path", r.status_code) == 404

        # A genuine server-side failure: the database refuses this client's inserts with an error
        # PixelFlow has no mapping for (a trigger raising), so the API answers 500 + incident id.
        with psycopg.connect(stack.env["PIXELFLOW_DATABASE_URL"], autocommit=True) as db:
            fn = f"fail_{client.id.hex}"
            db.execute(
                f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.client_id = '{client.id}' THEN RAISE EXCEPTION 'storage engine exploded'; END IF; "
                "RETURN NEW; END $$"
            )
            db.execute(f"CREATE TRIGGER {fn} BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION {fn}()")
            try:
                r = await http.post("/v1/jobs", json=spec(), headers=auth)
            finally:
                db.execute(f"DROP TRIGGER {fn} ON jobs")
                db.execute(f"DROP FUNCTION {fn}()")
    assert r.status_code == 500, r.text
    incident = r.json()["detail"].rsplit("incident ", 1)[1].rstrip(")")
    assert "exploded" not in r.text  # internal detail is logged, never returned

    api_process.stop()
    lines = [line for line in api_process.lines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {line[:200]}")
    text = "\n".join(lines)
    for value in [key, secret, *SECRETS.values()]:
        assert value not in text, f"{value[:12]}… appeared in the API's logs"
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("api_key=[redacted]" in r["msg"] and "X-Amz-Signature=[redacted]" in r["msg"] for r in access)
    (failure,) = [r for r in records if r.get("incident") == incident]
    assert failure["level"] == "error" and "Traceback" in failure["exc"] and "exploded" in failure["exc"]
