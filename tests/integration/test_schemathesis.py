"""Property-based API testing from our own OpenAPI document (schemathesis): whatever a client
with a valid key sends to any operation, the API never answers 5xx.

Driven through hypothesis directly: schemathesis' pytest plugin does not support pytest 9 yet."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import ApiServer, Stack, make_tenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_key(stack: Stack, api: ApiServer) -> str:
    async def make() -> str:
        t = await make_tenant(stack, api)
        await t.http.aclose()
        return t.key

    return asyncio.new_event_loop().run_until_complete(make())


def test_no_operation_answers_5xx(api: ApiServer, api_key: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/schema/openapi.json")
    headers = {"Authorization": f"Bearer {api_key}"}
    server_errors: list[str] = []
    calls = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: schemathesis.Case) -> None:
            nonlocal calls
            response = case.call(headers=headers, timeout=30)
            calls += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        exercise()
    print(f"\nschemathesis: {calls} requests over {len(operations)} operations, {len(server_errors)} 5xx")
    assert server_errors == []
