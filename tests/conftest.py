"""Session fixtures shared by tests/integration and tests/security: registered once here, so a
run of both directories starts one set of services (see tests/integration/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration import conftest as services

stack = pytest.fixture(scope="session")(services.stack)
api = pytest.fixture(scope="session")(services.api)
worker = pytest.fixture(scope="session")(services.worker)
receiver = pytest.fixture(scope="session")(services.receiver)
tenant = pytest.fixture(services.tenant)
