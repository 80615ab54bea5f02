"""Shared fixtures: one real PostgreSQL per test session, the API behind the same gateway
translation `make dev` uses, and tenants (an application with its own API key)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from support import ADMIN_TOKEN, Tenant, create_tenant
from support_delivery import Receiver
from support_process import DevServer

ROOT = Path(__file__).resolve().parents[1]

# Before any hookpost module reads its settings.
os.environ["HOOKPOST_ADMIN_TOKEN"] = ADMIN_TOKEN
os.environ["HOOKPOST_ALLOW_PRIVATE_TARGETS"] = "true"
os.environ["HOOKPOST_LIMITS"] = "off"  # tests/integration/test_limits.py turns them on


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """DATABASE_URL when set, else a throw-away embedded PostgreSQL; migrated either way."""
    from hookpost.db.migrate import migrate
    from hookpost.local.postgres import embedded_postgres

    with ExitStack() as stack:
        url = os.environ.get("DATABASE_URL") or stack.enter_context(embedded_postgres(None))
        os.environ["DATABASE_URL"] = url
        migrate(url)
        yield url
        from hookpost.db.pool import close_pool

        close_pool()


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test reads the environment anew, so monkeypatched settings apply and then vanish."""
    from hookpost.config import get_settings

    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """Set environment variables for one test, with the settings read anew."""
    from hookpost.config import get_settings

    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    return set_env


@pytest.fixture(scope="session")
def ingest_handler():
    from hookpost.local.gateway import load_handler

    return load_handler(ROOT / "functions" / "ingest" / "app.py")


@pytest.fixture
def api(database_url: str, ingest_handler) -> Iterator[httpx.Client]:
    """An HTTP client whose requests become API Gateway events for the ingest Lambda handler."""
    from hookpost.local.gateway import wsgi_app

    transport = httpx.WSGITransport(app=wsgi_app(ingest_handler))
    with httpx.Client(transport=transport, base_url="http://hookpost.test") as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on loopback, recording what it gets."""
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def tenant(api: httpx.Client) -> Tenant:
    return create_tenant(api, "tenant-a")


@pytest.fixture
def other_tenant(api: httpx.Client) -> Tenant:
    return create_tenant(api, "tenant-b")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in place of every AWS API (tests/support_aws.py)."""
    from support_aws import mocked_aws

    with mocked_aws(monkeypatch):
        yield


@pytest.fixture
def dev_server() -> Iterator[Callable[..., DevServer]]:
    """Makes `hookpost dev` processes (DevServer's arguments); whatever happens in the test, each
    is stopped at its end, with everything it started."""
    made: list[DevServer] = []

    def make(*args, **kwargs) -> DevServer:
        made.append(DevServer(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        if server.process is not None:
            server.stop()
