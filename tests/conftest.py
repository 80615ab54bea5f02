"""Shared fixtures: one real PostgreSQL per test session, the API behind the same gateway
translation `make dev` uses, and tenants (an application with its own API key)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "test-admin-token-" + uuid.uuid4().hex

# Before any hookpost module reads its settings.
os.environ["HOOKPOST_ADMIN_TOKEN"] = ADMIN_TOKEN
os.environ["HOOKPOST_ALLOW_PRIVATE_TARGETS"] = "true"


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


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Tenant:
    """An application and one of its API keys, with the client to call the API as it."""

    api: httpx.Client
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def path(self, suffix: str = "") -> str:
        return f"/v1/applications/{self.id}{suffix}"

    def get(self, suffix: str, **kwargs) -> httpx.Response:
        return self.api.get(self.path(suffix), headers=self.headers, **kwargs)

    def post(self, suffix: str, json: object = None, **kwargs) -> httpx.Response:
        return self.api.post(self.path(suffix), headers=self.headers, json=json, **kwargs)

    def patch(self, suffix: str, json: object = None) -> httpx.Response:
        return self.api.patch(self.path(suffix), headers=self.headers, json=json)

    def delete(self, suffix: str) -> httpx.Response:
        return self.api.delete(self.path(suffix), headers=self.headers)

    def event_type(self, name: str = "invoice.paid", **fields) -> dict:
        response = self.post("/event-types", {"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def subscription(self, url: str = "http://127.0.0.1:9/hook", **fields) -> dict:
        body = {"url": url, "event_types": ["*"], **fields}
        response = self.post("/subscriptions", body)
        assert response.status_code == 201, response.text
        return response.json()

    def send(self, event_type: str = "invoice.paid", payload: object = None, **fields) -> dict:
        body = {"event_type": event_type, "payload": payload or {"amount": 1}, **fields}
        response = self.post("/events", body)
        assert response.status_code in (200, 202), response.text
        return response.json()


def create_tenant(api: httpx.Client, name: str = "shop") -> Tenant:
    app = api.post("/v1/applications", headers=ADMIN, json={"name": name})
    assert app.status_code == 201, app.text
    key = api.post(
        f"/v1/applications/{app.json()['id']}/api-keys", headers=ADMIN, json={"name": "k"}
    )
    assert key.status_code == 201, key.text
    return Tenant(api, app.json()["id"], key.json()["key"])


@pytest.fixture
def tenant(api: httpx.Client) -> Tenant:
    return create_tenant(api, "tenant-a")


@pytest.fixture
def other_tenant(api: httpx.Client) -> Tenant:
    return create_tenant(api, "tenant-b")
