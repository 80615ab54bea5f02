"""recover_leases: attempts whose worker died mid-delivery (their lease expired while in flight)
go back to pending, to be claimed and sent again; pending attempts whose event expired end as
`expired` (held ones too: a claim only meets the attempts it may send); subscriptions the claim
queue lost track of are made ready again (see DELIVERY_RESYNC_READY). It also measures the
backlog (due attempts not yet claimed: BacklogDepth) and how long its oldest attempt has been
due (OldestDueAgeSeconds, from the statement GET /v1/metrics reads), which the template's alarms
watch, and, on AWS, starts extra deliver runs when it is deep, since the deliver schedule alone
starts one a minute."""

from __future__ import annotations

import math
import threading

import psycopg

from hookpost.aws.wake import wake_deliver
from hookpost.config import Settings
from hookpost.db import queries
from hookpost.delivery import expire, recover_expired_leases, resync_ready

BACKLOG_CAP = 1_000_000
# What one deliver run is asked to take on. More runs than its reserved concurrency allows
# only queue in Lambda, so this decides how many to ask for, not how many run.
BACKLOG_PER_RUN = 10_000
MAX_RUNS_WOKEN = 10


def runs_to_wake(backlog: int) -> int:
    """Extra deliver runs for a backlog: none while one run can take it, then one per
    BACKLOG_PER_RUN, up to MAX_RUNS_WOKEN."""
    return min(MAX_RUNS_WOKEN, math.ceil(backlog / BACKLOG_PER_RUN) - 1) if backlog else 0


def run(conn: psycopg.Connection, settings: Settings, stop: threading.Event) -> dict[str, int]:
    recovered = recover_expired_leases(conn)
    expired = expire(conn)
    resynced = resync_ready(conn)
    backlog = conn.execute(queries.BACKLOG_DEPTH, {"cap": BACKLOG_CAP}).fetchone()["depth"]
    applications = conn.execute(queries.METRICS_APPLICATIONS).fetchall()
    return {
        "leases_recovered": recovered,
        "attempts_expired": expired,
        "subscriptions_resynced": resynced,
        "backlog_depth": backlog,
        "oldest_due_age_seconds": round(max((a["oldest_due_s"] for a in applications), default=0)),
        "deliver_runs_woken": wake_deliver(runs_to_wake(backlog)),
    }
