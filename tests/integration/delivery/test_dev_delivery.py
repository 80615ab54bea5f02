"""`make dev` runs the deliver loop beside the API: an event sent over HTTP reaches a receiver,
the outcome is printed, and Ctrl-C still stops everything cleanly."""

from __future__ import annotations

import signal

import httpx

from support_process import ROOT, wait_for


def test_dev_delivers_what_its_api_accepts(database_url, tmp_path, receiver, dev_server):
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    server = dev_server(
        tmp_path, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
    ).start()
    with httpx.Client(base_url=server.base) as client:
        admin = {"Authorization": "Bearer dev-admin"}
        app = client.post("/v1/applications", headers=admin, json={"name": "dev"}).json()
        key = client.post(
            f"/v1/applications/{app['id']}/api-keys", headers=admin, json={"name": "k"}
        ).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        base = f"/v1/applications/{app['id']}"
        client.post(f"{base}/event-types", headers=auth, json={"name": "order.placed"})
        subscription = client.post(
            f"{base}/subscriptions",
            headers=auth,
            json={"url": receiver.url, "event_types": ["order.placed"]},
        ).json()
        sent = client.post(
            f"{base}/events",
            headers=auth,
            json={"event_type": "order.placed", "payload": {"id": 7}},
        ).json()
        wait_for(lambda: receiver.to(sent["id"]), timeout=10, what="the delivery")
        (attempt,) = client.get(f"{base}/events/{sent['id']}", headers=auth).json()["attempts"]
        # One line per outcome: the attempt, where it went, its status, code and time.
        line = f"attempt {attempt['id']} to {receiver.url}: succeeded, 200, "
        wait_for(lambda: server.printed(line), timeout=10, what="the outcome line")
    code, output = server.stop(signal.SIGINT)
    assert code == 0, output
    assert receiver.to(sent["id"])[0].verify(subscription["secret"])["data"] == {"id": 7}
