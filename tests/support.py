"""What tests share besides fixtures: the admin credentials and a tenant helper."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

ADMIN_TOKEN = "test-admin-token-" + uuid.uuid4().hex
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
