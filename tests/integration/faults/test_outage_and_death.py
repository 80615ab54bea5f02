"""Faults around the whole system as `make dev` runs it: PostgreSQL going away and coming back,
and the whole process killed mid-delivery. Nothing acknowledged (202) is ever lost."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pgserver
import pytest
from aiohttp import web

from support import ADMIN_TOKEN, Tenant, create_tenant
from support_delivery import Receiver, send_batches, settle_strays
from support_process import ROOT, DevServer, wait_for

# Short leases and periods, so that recovery is quick; the rest as deployed.
FAST = {
    "HOOKPOST_ADMIN_TOKEN": ADMIN_TOKEN,
    "HOOKPOST_DELIVERY_LEASE_S": "3",
    "HOOKPOST_DELIVERY_RECOVER_S": "1",
    "HOOKPOST_DELIVERY_POLL_S": "0.2",
    "HOOKPOST_RECOVER_LEASES_EVERY_S": "1",
    "HOOKPOST_RETRY_FAST_S": "0.2",
    "HOOKPOST_RETRY_JITTER": "0",
    "HOOKPOST_DB_CONNECT_TIMEOUT_S": "1",
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    return tmp_path


def delivered(receiver: Receiver) -> set[str]:
    return {r.webhook_id for r in receiver.requests}


def send_retrying(tenant: Tenant) -> str:
    """Send an event as a client should: again after a 503. Its id once accepted."""
    accepted: list[str] = []

    def send() -> bool:
        response = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}})
        assert response.status_code in (202, 503), response.text
        if response.status_code == 202:
            accepted.append(response.json()["id"])
        return bool(accepted)

    wait_for(send, timeout=30, what="the event accepted")
    return accepted[0]


def tenant_of(server: DevServer, receiver: Receiver) -> Tenant:
    tenant = create_tenant(httpx.Client(base_url=server.base, timeout=10))
    tenant.event_type()
    tenant.subscription(receiver.url)
    return tenant


class OwnPostgres:
    """A PostgreSQL of this test's own, to stop and start again on the same data."""

    def __init__(self, parent: Path) -> None:
        self.data = parent / "data"
        self.start()
        self.url = self.server.get_uri()

    def stop(self) -> None:
        self.server.cleanup()
        self.running = False

    def start(self) -> None:
        self.server = pgserver.get_server(self.data, cleanup_mode="stop")
        self.running = True


@pytest.fixture
def postgres() -> Iterator[OwnPostgres]:
    """Stopped and deleted (some 40 MB) at the end, whatever happened."""
    # Not under tmp_path: as root, pgserver runs postgres as a user of its own, who cannot
    # enter pytest's private temporary directories.
    parent = Path(tempfile.mkdtemp(prefix="hookpost-outage-"))
    try:
        os.chmod(parent, 0o755)
        own = OwnPostgres(parent)
        yield own
        if own.running:
            own.stop()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_a_database_outage_answers_503_and_loses_nothing_acknowledged(
    workdir, receiver, postgres, dev_server
):
    server = dev_server(workdir, {**FAST, "DATABASE_URL": postgres.url}).start()
    tenant = tenant_of(server, receiver)

    async def slowly(received):
        await asyncio.sleep(0.05)
        return web.Response()

    receiver.answer = slowly
    acknowledged = [tenant.send()["id"] for _ in range(30)]

    postgres.stop()
    health = httpx.get(f"{server.base}/v1/health", timeout=10)
    assert health.status_code == 503 and health.json()["database"] == "unavailable"
    refused = tenant.post("/events", {"event_type": "invoice.paid", "payload": {}})
    assert refused.status_code == 503
    # The loops meet the outage too: each notices, logs, and carries on by itself.
    wait_for(lambda: server.printed("job recover_leases failed"), timeout=10, what="jobs")
    wait_for(lambda: server.printed("claim failed"), timeout=10, what="the deliver loop")
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 0

    postgres.start()
    wait_for(
        lambda: httpx.get(f"{server.base}/v1/health", timeout=10).status_code == 200,
        timeout=30,
        what="health once PostgreSQL is back",
    )
    # Each API process finds its stale connections broken once (503, retry) and replaces them.
    acknowledged += [send_retrying(tenant) for _ in range(10)]
    wait_for(
        lambda: set(acknowledged) <= delivered(receiver),
        timeout=60,
        what="every acknowledged event delivered",
    )
    code, output = server.stop()
    assert code == 0, output


def test_killing_the_whole_dev_process_mid_delivery_loses_nothing(
    workdir, receiver, database_url, dev_server
):
    settle_strays(database_url)
    env = {**FAST, "DATABASE_URL": database_url}
    server = dev_server(workdir, env).start()

    async def slowly(received):
        await asyncio.sleep(0.1)
        return web.Response()

    receiver.answer = slowly
    tenant = tenant_of(server, receiver)
    acknowledged = [result["id"] for result in send_batches(tenant, 1000)]
    wait_for(lambda: len(receiver.requests) >= 200, timeout=30, what="delivery under way")
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    assert len(delivered(receiver)) < 1000, "killed mid-delivery"

    restarted = dev_server(workdir, env).start()
    wait_for(
        lambda: set(acknowledged) <= delivered(receiver),
        timeout=60,
        what="every acknowledged event delivered after the restart",
    )
    code, output = restarted.stop()
    assert code == 0, output
    duplicates = len(receiver.requests) - len(delivered(receiver))
    # At most what the killed loop held: its requests in flight and one claimed batch.
    assert duplicates <= 200, duplicates
