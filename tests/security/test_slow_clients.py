"""Item 5: clients that send their request slowly are cut off; everyone else is still served.
Runs ``pixelflow api`` as a child process, the way it runs in production."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from infra.settings import load_settings
from tests.integration.conftest import Stack
from tests.security.conftest import ApiProcess, record
from tests.timing import SLACK

pytestmark = pytest.mark.integration

SLOW = 50
HEADER_TIMEOUT = 5.0  # long enough for the ordinary client's requests to end before the first cut-off
BODY_TIMEOUT = 5.0
# A cut-off may come late on a loaded machine, but not as late as the defaults (10 s and 60 s)
# that would apply if the settings were ignored.
HEADER_CUT_BY = HEADER_TIMEOUT + (load_settings({}).api_header_timeout_seconds - HEADER_TIMEOUT) / 2
BODY_CUT_BY = BODY_TIMEOUT + SLACK


async def slow_headers(port: int, until: float) -> float | None:
    """Send a request line, then one header every 0.3 s. Returns when the server hung up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
        await writer.drain()
        i = 0
        while time.monotonic() < until:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=0.3)
            except TimeoutError:
                writer.write(b"X-Slow-%d: 1\r\n" % i)
                i += 1
                try:
                    await writer.drain()
                except ConnectionError:
                    return time.monotonic() - started
                continue
            if not data or data.startswith(b"HTTP/1.1 408"):
                return time.monotonic() - started
        return None  # still connected
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


async def slow_body(port: int, until: float) -> float | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(
            b"POST /v1/specs/validate HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        await writer.drain()
        while time.monotonic() < until:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=0.3)
            except TimeoutError:
                writer.write(b" ")
                try:
                    await writer.drain()
                except ConnectionError:
                    return time.monotonic() - started
                continue
            if not data:
                return time.monotonic() - started
        return None
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


async def test_slow_senders_are_cut_off_and_others_served(stack: Stack, tmp_path) -> None:
    proc = ApiProcess(
        stack.env,
        tmp_path / "api.log",
        PIXELFLOW_API_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        PIXELFLOW_API_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    ).start()
    try:
        until = time.monotonic() + max(HEADER_CUT_BY, BODY_CUT_BY) + 1
        slow = [asyncio.create_task(slow_headers(proc.port, until)) for _ in range(SLOW)]
        body = asyncio.create_task(slow_body(proc.port, until))
        await asyncio.sleep(0.5)
        # Meanwhile an ordinary client is served: while every slow sender still holds its
        # connection, not once they have been cut off.
        async with httpx.AsyncClient(base_url=proc.url, timeout=3 * SLACK) as http:
            for _ in range(5):
                assert (await http.get("/healthz")).status_code == 200
                assert not any(task.done() for task in slow), "the ordinary client waited for the slow ones"
                await asyncio.sleep(0.05)
        held = await asyncio.gather(*slow)
        body_held = await body
    finally:
        proc.stop()
    for seconds in held:
        record("slow headers (slowloris)", 408)
        assert seconds is not None, "a slow header sender was never cut off"
        assert seconds < HEADER_CUT_BY, seconds
    record("slow body", 408)
    assert body_held is not None and body_held < BODY_CUT_BY, body_held
