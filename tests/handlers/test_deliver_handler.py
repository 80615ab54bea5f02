"""The deliver Lambda invoked with `events/deliver_schedule.json`, as `sam local invoke` does."""

from __future__ import annotations

import json
import time

from hookpost.local.gateway import LocalLambdaContext, load_handler
from support import create_tenant
from support_delivery import settle_strays
from support_process import ROOT


def test_deliver_schedule_sample(api, env, receiver, capsys, database_url):
    settle_strays(database_url)
    tenant = create_tenant(api)
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url)
    sent = {tenant.send()["id"] for _ in range(3)}
    # Requests time out after 0.5 s, so claiming stops 2.5 s before the deadline.
    env(HOOKPOST_DELIVERY_TIMEOUT_S="0.5", HOOKPOST_DELIVERY_POLL_S="0.05")
    handler = load_handler(ROOT / "functions" / "deliver" / "app.py")
    event = json.loads((ROOT / "events" / "deliver_schedule.json").read_text())
    context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 3500)

    summary = handler(event, context)

    assert context.get_remaining_time_in_millis() > 0, "returned after its deadline"
    assert summary == {
        "claimed": 3,
        "succeeded": 3,
        "failed": 0,
        "gave_up": 0,
        "expired": 0,
        "released": 0,
        "recovered": 0,
    }
    assert sorted(r.webhook_id for r in receiver.requests) == sorted(sent)
    statuses = {a["status"] for a in tenant.get("/attempts").json()["data"]}
    assert statuses == {"succeeded"}
    # CloudWatch embedded metrics: the names and dimension template.yaml's dashboard reads.
    emitted = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            document = json.loads(line)
            if document["service"] != "deliver":
                continue  # the ingest function's, from setting the test up
            (directive,) = document["_aws"]["CloudWatchMetrics"]
            assert directive["Namespace"] == "Hookpost"
            emitted.update({m["Name"]: document[m["Name"]] for m in directive["Metrics"]})
    assert emitted["AttemptsSucceeded"] == [float(summary["succeeded"])]
    assert emitted["Heartbeat"] == [1.0]
    assert len(emitted["DeliveryLatency"]) == summary["succeeded"]
    assert all(0 <= ms < 5000 for ms in emitted["DeliveryLatency"])


def test_a_woken_run_stops_once_nothing_is_due(api, env, receiver, database_url):
    from hookpost.aws.wake import WAKE_EVENT

    settle_strays(database_url)
    tenant = create_tenant(api)
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url)
    sent = {tenant.send()["id"] for _ in range(3)}
    env(HOOKPOST_DELIVERY_POLL_S="0.05")
    handler = load_handler(ROOT / "functions" / "deliver" / "app.py")
    context = LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 60_000)

    summary = handler(dict(WAKE_EVENT), context)

    assert summary["succeeded"] == 3
    assert {r.webhook_id for r in receiver.requests} == sent
    # a scheduled run would have polled until about 17 s before its deadline
    assert context.get_remaining_time_in_millis() > 50_000


def test_attempts_of_a_run_cut_off_by_its_deadline_come_back_after_the_lease(
    api, env, receiver, database_url
):
    import uuid

    import psycopg
    from psycopg.rows import dict_row

    from hookpost.delivery.claims import claim

    settle_strays(database_url)
    tenant = create_tenant(api)
    tenant.event_type("invoice.paid")
    tenant.subscription(url=receiver.url)
    sent = {tenant.send()["id"] for _ in range(3)}
    # A run claimed them, then Lambda stopped it at its deadline: leased (1 s), never recorded.
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        assert len(claim(conn, uuid.uuid4(), 10, 1.0).attempts) == 3
    env(
        HOOKPOST_DELIVERY_TIMEOUT_S="0.5",
        HOOKPOST_DELIVERY_POLL_S="0.05",
        HOOKPOST_DELIVERY_RECOVER_S="0.2",
    )
    handler = load_handler(ROOT / "functions" / "deliver" / "app.py")
    event = json.loads((ROOT / "events" / "deliver_schedule.json").read_text())
    # The next scheduled run: it claims for 3 s, the lease runs out after 1.
    summary = handler(event, LocalLambdaContext(deadline_ms=int(time.time() * 1000) + 5500))
    assert summary["recovered"] == 3 and summary["succeeded"] == 3
    assert {r.webhook_id for r in receiver.requests} == sent
