"""`make dev`: the real HTTP server in front of the ingest handler, PostgreSQL kept under
.local/ between runs, and a clean stop on Ctrl-C."""

from __future__ import annotations

import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from support_process import ROOT, DevServer, wait_for


def test_dev_serves_the_api_over_http_and_stops_cleanly(database_url, tmp_path):
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    server = DevServer(
        tmp_path, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
    ).start()
    admin = {"Authorization": "Bearer dev-admin"}
    created = httpx.post(f"{server.base}/v1/applications", headers=admin, json={"name": "http"})
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    bad = httpx.post(
        f"{server.base}/v1/applications",
        headers={**admin, "content-type": "application/json"},
        content=b"{",
    )
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    code, output = server.stop(signal.SIGINT)
    assert code == 0, output
    assert f"http://127.0.0.1:{server.port}" in output and "dev-admin" in output


def test_concurrent_requests_each_get_their_own_answer(database_url, tmp_path):
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    server = DevServer(
        tmp_path, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
    ).start()
    admin = {"Authorization": "Bearer dev-admin"}

    def create(i: int) -> tuple[int, str, str]:
        with httpx.Client(base_url=server.base, headers=admin) as client:
            name = f"concurrent-{i}"
            response = client.post("/v1/applications", json={"name": name})
            fetched = client.get(f"/v1/applications/{response.json()['id']}")
            return fetched.status_code, fetched.json()["name"], name

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(create, range(64)))
    finally:
        assert server.stop()[0] == 0
    assert all(status == 200 and got == sent for status, got, sent in results)


def test_dev_keeps_an_embedded_cluster_under_dot_local(tmp_path):
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    unset = ("DATABASE_URL", "HOOKPOST_ADMIN_TOKEN")
    first = DevServer(tmp_path, {}, unset).start()
    token = (tmp_path / ".local" / "admin_token").read_text().strip()
    admin = {"Authorization": f"Bearer {token}"}
    app = httpx.post(f"{first.base}/v1/applications", headers=admin, json={"name": "kept"}).json()
    code, output = first.stop(signal.SIGTERM)
    assert code == 0, output
    assert token in output
    assert not (tmp_path / ".local" / "pgdata" / "postmaster.pid").exists(), "postgres stopped"

    second = DevServer(tmp_path, {}, unset).start()
    try:
        kept = httpx.get(f"{second.base}/v1/applications/{app['id']}", headers=admin)
        assert kept.status_code == 200 and kept.json()["name"] == "kept"
    finally:
        assert second.stop()[0] == 0


def test_api_workers_do_not_outlive_a_killed_dev_process(database_url, tmp_path):
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    server = DevServer(
        tmp_path, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
    ).start()
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    workers = [int(pid) for pid in children.read_text().split()]
    assert workers, "the API runs in worker processes"
    server.process.kill()
    server.process.wait(timeout=10)
    wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
        timeout=10,
        what="the API workers to exit",
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", server.port))  # nobody holds the port any more
