"""`make dev`: the real HTTP server in front of the ingest handler, PostgreSQL kept under
.local/ between runs, what it prints, and a clean stop on SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from support_process import ROOT, wait_for


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory to run `hookpost dev` in: the handlers, and room for .local/."""
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    return tmp_path


def test_dev_serves_the_api_over_http_and_stops_cleanly(database_url, workdir, dev_server):
    server = dev_server(
        workdir, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
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


def test_the_banner_comes_once_the_api_answers_and_tells_how_to_reach_it(workdir, dev_server):
    server = dev_server(workdir, {}, ("DATABASE_URL", "HOOKPOST_ADMIN_TOKEN")).launch()
    wait_for(lambda: server.printed("Ctrl-C"), timeout=60, what="the banner")
    # When the banner is there, the API it names answers at once.
    health = httpx.get(f"{server.base}/v1/health", timeout=1)
    assert health.status_code == 200, health.text
    banner = dict(line.split(":  ", 1) for line in server.lines if ":  " in line)
    token = (workdir / ".local" / "admin_token").read_text().strip()
    assert banner["Hookpost API"].startswith(f"{server.base}/v1")
    assert banner["Admin token"].strip() == token
    # The embedded cluster's URL, as `hookpost job ...` needs it: it reaches the database.
    assert str(workdir / ".local" / "pgdata") in banner["DATABASE_URL"]
    with psycopg.connect(banner["DATABASE_URL"].strip()) as conn:
        assert conn.execute("SELECT count(*) FROM applications").fetchone() == (0,)
    code, output = server.stop()
    assert code == 0, output
    # None of pgserver's or initdb's chatter, nor warnings meant for Lambda.
    assert "Running commandline" not in output and "Success. You can now start" not in output
    assert "Warning" not in output, output
    assert output.count("Hookpost API:") == 1


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_it_and_its_children_even_in_the_background(
    database_url, workdir, dev_server, stop_signal
):
    # Started as `make dev &` in a script starts it: with SIGINT ignored.
    server = dev_server(
        workdir,
        {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"},
        sigint_ignored=True,
    ).start()
    workers = server.children()
    assert workers, "the API runs in worker processes"
    code, output = server.stop(stop_signal, timeout=20)
    assert code == 0, output
    assert server.strays == [], output
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert "deliver loop stopped" in output


def test_a_port_in_use_is_one_line_before_anything_starts(workdir, dev_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = dev_server(
            workdir, {}, ("DATABASE_URL", "HOOKPOST_ADMIN_TOKEN"), port=port
        ).launch()
        code, output = server.wait(timeout=30)
    assert code == 1, output
    (line,) = output.splitlines()
    assert f"127.0.0.1:{port}" in line and "HOOKPOST_PORT" in line
    assert not (workdir / ".local").exists(), "nothing was started or generated"


def test_concurrent_requests_each_get_their_own_answer(database_url, workdir, dev_server):
    server = dev_server(
        workdir, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
    ).start()
    admin = {"Authorization": "Bearer dev-admin"}

    def create(i: int) -> tuple[int, str, str]:
        with httpx.Client(base_url=server.base, headers=admin) as client:
            name = f"concurrent-{i}"
            response = client.post("/v1/applications", json={"name": name})
            fetched = client.get(f"/v1/applications/{response.json()['id']}")
            return fetched.status_code, fetched.json()["name"], name

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, range(64)))
    assert server.stop()[0] == 0
    assert all(status == 200 and got == sent for status, got, sent in results)


def test_dev_keeps_an_embedded_cluster_under_dot_local(workdir, dev_server):
    unset = ("DATABASE_URL", "HOOKPOST_ADMIN_TOKEN")
    first = dev_server(workdir, {}, unset).start()
    token = (workdir / ".local" / "admin_token").read_text().strip()
    admin = {"Authorization": f"Bearer {token}"}
    app = httpx.post(f"{first.base}/v1/applications", headers=admin, json={"name": "kept"}).json()
    code, output = first.stop(signal.SIGTERM)
    assert code == 0, output
    assert token in output
    assert not (workdir / ".local" / "pgdata" / "postmaster.pid").exists(), "postgres stopped"

    second = dev_server(workdir, {}, unset).start()
    kept = httpx.get(f"{second.base}/v1/applications/{app['id']}", headers=admin)
    assert kept.status_code == 200 and kept.json()["name"] == "kept"
    assert second.stop()[0] == 0


def test_api_workers_do_not_outlive_a_killed_dev_process(database_url, workdir, dev_server):
    server = dev_server(
        workdir, {"DATABASE_URL": database_url, "HOOKPOST_ADMIN_TOKEN": "dev-admin"}
    ).start()
    workers = server.children()
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
