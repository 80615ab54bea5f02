"""The capacity model of the README: from one `make bench` run's measured cost per event, what one
PostgreSQL writer of 2, 8 and 32 vCPU carries, and what a million events cost on AWS at list
prices. `python bench/capacity.py [bench/results.json]` prints it as Markdown tables.

An event here is one ingest and one delivered attempt (one matching subscription). The writer's
capacity is its vCPUs at a planned utilisation over the PostgreSQL backend CPU the bench measured
per event (statements unprepared, as on Lambda behind RDS Proxy): it assumes that CPU scales
about linearly with vCPUs, until WAL bandwidth or lock contention bites, and that one AWS vCPU
does the work of one core of the machine the bench ran on. It is a model from a run on that
machine, not a measurement on AWS. Everything it assumes beyond the measured figures is a named
constant below.
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"

# The figures of bench/results.json the model reads (bench/run.py, costs.py, ingest_cost.py).
DB_CPU_INGEST = "PostgreSQL backend CPU per event ingested, unprepared"
DB_CPU_ATTEMPT = "PostgreSQL backend CPU per attempt delivered, unprepared"
WAL_INGEST = "WAL bytes per event ingested"
WAL_ATTEMPT = "WAL bytes per attempt delivered"
TRIPS_INGEST = "round trips per single-event ingest, limits on"
TRIPS_ATTEMPT = "round trips per attempt delivered (claim + record over the batch)"
HANDLER_CPU = "ingest handler CPU per single-event request, in-process"
DELIVERIES = "deliveries/s, one deliver process, 100 in flight"
INGEST_BATCH = "ingest, batches of 500, HTTP"
FIGURES = (
    DB_CPU_INGEST,
    DB_CPU_ATTEMPT,
    WAL_INGEST,
    WAL_ATTEMPT,
    TRIPS_INGEST,
    TRIPS_ATTEMPT,
    HANDLER_CPU,
    DELIVERIES,
    INGEST_BATCH,
)

# Assumptions, each used by name below.
UTILISATION = 0.70  # plan a writer at 70 % CPU: peaks, autovacuum, checkpoints, WAL writer
BATCH = 500  # events per batch request (the API's maximum)
VCPU_MEMORY_MB = 1769  # Lambda has one vCPU at 1,769 MB, and a share in proportion below it
INGEST_MEMORY_MB = 1024  # template.yaml Globals: the ingest and deliver functions keep it
DELIVER_MEMORY_MB = 1024
IN_FLIGHT = 100  # template.yaml DeliveryConcurrency default
RECEIVER_MS = 50.0  # a receiver's answer time: 100 in flight then wait 0.5 ms an attempt
ROUND_TRIP_MS = 3.0  # Lambda -> RDS Proxy -> Aurora and back, commit included: assumed
IO_BYTES = 4096  # Aurora Standard: a billed write I/O per 4 KiB of log, at least one a commit
ACU_PER_VCPU = 4  # Serverless v2: 1 ACU ~ 2 GiB; a 2-vCPU, 16 GiB db.r6g.large ~ 8 ACU

# List prices, us-east-1, on demand, in US dollars. The stored AWS pricing pages show no
# figures, so each price says where it was read and the date that source shows; "as known" is
# the list price as known on PRICES_CHECKED, not read from a stored page.
REGION = "us-east-1"
PRICES_CHECKED = "2026-12-02"


@dataclass(frozen=True)
class Price:
    label: str
    value: float
    unit: str
    source: str
    dated: str


_PRICE_API = (
    "AWS Price List API, as quoted by a public repository's pricing notes (the SKU given), "
    "https://aws.amazon.com/{page}/pricing/"
)
PRICES: dict[str, Price] = {
    "api_gateway_rest": Price(
        "API Gateway REST API",
        3.50,
        "per million REST API requests (first 333 million a month)",
        "AWS whitepaper 'Best Practices for Designing Amazon API Gateway Private APIs and "
        "Private Integration', Cost optimization, table 4; "
        "https://aws.amazon.com/api-gateway/pricing/",
        f"stored page undated; as known on {PRICES_CHECKED}",
    ),
    "lambda_request": Price(
        "Lambda requests",
        0.20,
        "per million Lambda requests (SKU GU2ZS9HVP6QTQ7KE)",
        _PRICE_API.format(page="lambda"),
        "queried 2025-10-28, effective 2025-10-01",
    ),
    "lambda_gb_second": Price(
        "Lambda duration",
        0.0000166667,
        "per GB-second, x86_64, first 6 billion a month (SKU TG3M4CAGBA3NYQBH)",
        _PRICE_API.format(page="lambda"),
        "queried 2025-10-28, effective 2025-10-01",
    ),
    "aurora_acu_hour": Price(
        "Aurora Serverless v2",
        0.12,
        "per ACU-hour, Aurora PostgreSQL Serverless v2, Standard (SKU AVKW7ZJP8D72HNQC)",
        _PRICE_API.format(page="rds/aurora"),
        "queried 2025-10-28, effective 2025-10-01",
    ),
    "aurora_acu_hour_io_optimized": Price(
        "Aurora Serverless v2, I/O-Optimized",
        0.16,
        "per ACU-hour, Serverless v2, I/O-Optimized (SKU KG668U3YXJQ6YH9Y)",
        _PRICE_API.format(page="rds/aurora"),
        "queried 2025-10-28, effective 2025-10-01",
    ),
    "aurora_io": Price(
        "Aurora I/O",
        0.20,
        "per million I/O requests, Aurora Standard (SKU 7JDSZP38DMKT9B86)",
        _PRICE_API.format(page="rds/aurora"),
        "queried 2025-10-28, effective 2025-10-01",
    ),
    "io_optimized_instance_factor": Price(
        "Aurora I/O-Optimized instances",
        1.30,
        "times the Standard instance price, and no I/O charges",
        "wring.co 'AWS Aurora Pricing: Provisioned vs Serverless v2'",
        "2026-03-12",
    ),
    "rds_proxy_vcpu_hour": Price(
        "RDS Proxy, provisioned",
        0.015,
        "per vCPU-hour of the provisioned instances behind RDS Proxy (2 vCPU minimum)",
        "public repository notes 'RDS Proxy pricing (us-east-1)'; "
        "https://aws.amazon.com/rds/proxy/pricing/",
        f"undated; as known on {PRICES_CHECKED}",
    ),
    "rds_proxy_acu_hour": Price(
        "RDS Proxy, Serverless v2",
        0.015,
        "per ACU-hour of Serverless v2 behind RDS Proxy (8 ACU minimum)",
        "https://aws.amazon.com/rds/proxy/pricing/; the 8 ACU minimum: serverworks.co.jp",
        f"2024-06 (minimum); price as known on {PRICES_CHECKED}",
    ),
}


@dataclass(frozen=True)
class Writer:
    instance_class: str
    vcpus: int
    price_per_hour: float  # on demand, Aurora Standard


WRITER_SOURCE = (
    "on demand, Aurora PostgreSQL Standard: third-party calculator data (public repository, "
    "us-east-1); wring.co gives the same $0.26 an hour for db.r7g.large (2026-03-12)"
)
WRITERS = (
    Writer("db.r6g.large", 2, 0.26),
    Writer("db.r6g.2xlarge", 8, 1.04),
    Writer("db.r6g.8xlarge", 32, 4.16),
)


@dataclass(frozen=True)
class Measured:
    """One bench run's figures, in the units the model uses."""

    db_cpu_ingest_ms: float
    db_cpu_attempt_ms: float
    wal_ingest_bytes: float
    wal_attempt_bytes: float
    round_trips_ingest: float
    round_trips_attempt: float
    handler_cpu_ms: float
    deliveries_per_s: float
    ingest_batch_per_s: float
    bench_cores: int
    machine: str
    commit: str


def measured(results: dict[str, Any]) -> Measured:
    """The model's inputs from a bench/results.json document; a missing figure is an error that
    names it."""
    values = {f["figure"]: float(f["value"]) for f in results["figures"]}
    missing = [name for name in FIGURES if name not in values]
    if missing:
        raise KeyError(f"bench results lack: {'; '.join(missing)}")
    cores = re.search(r"(\d+) cores", results.get("machine", ""))
    if cores is None:
        raise ValueError("bench results name no core count in 'machine'")
    return Measured(
        db_cpu_ingest_ms=values[DB_CPU_INGEST],
        db_cpu_attempt_ms=values[DB_CPU_ATTEMPT],
        wal_ingest_bytes=values[WAL_INGEST],
        wal_attempt_bytes=values[WAL_ATTEMPT],
        round_trips_ingest=values[TRIPS_INGEST],
        round_trips_attempt=values[TRIPS_ATTEMPT],
        handler_cpu_ms=values[HANDLER_CPU],
        deliveries_per_s=values[DELIVERIES],
        ingest_batch_per_s=values[INGEST_BATCH],
        bench_cores=int(cores.group(1)),
        machine=results.get("machine", ""),
        commit=results.get("commit", ""),
    )


# The arithmetic


def events_per_s(cpu_ms_per_event: float, vcpus: float, utilisation: float) -> float:
    """Events a second that vcpus carry at the given utilisation, each costing cpu_ms_per_event."""
    return vcpus * 1000 * utilisation / cpu_ms_per_event


def cpu_ms_bound(cores: int, per_s: float) -> float:
    """An upper bound on the CPU one item costs, from a rate measured on a machine of so many
    cores: everything the machine ran shared them."""
    return cores * 1000 / per_s


def wal_mb_per_s(per_s: float, wal_bytes: float) -> float:
    return per_s * wal_bytes / 1e6


def cpu_share(memory_mb: int) -> float:
    """The vCPU a Lambda function of this memory has; one thread uses one at most."""
    return min(1.0, memory_mb / VCPU_MEMORY_MB)


def lambda_billed_ms(
    handler_cpu_ms: float,
    memory_mb: int,
    round_trips: float,
    round_trip_ms: float,
    db_ms: float,
) -> int:
    """One invocation's billed duration (1 ms steps): its CPU at the function's share of a vCPU,
    then its round trips to the database and the database's own work, waited for."""
    return math.ceil(handler_cpu_ms / cpu_share(memory_mb) + round_trips * round_trip_ms + db_ms)


def lambda_cost_per_million_events(
    billed_ms: float,
    memory_mb: int,
    events_per_invocation: float,
    request_price_per_million: float,
    gb_second_price: float,
) -> tuple[float, float]:
    """(requests, duration) in dollars per million events."""
    invocations = 1e6 / events_per_invocation
    requests = invocations / 1e6 * request_price_per_million
    duration = invocations * billed_ms / 1000 * memory_mb / 1024 * gb_second_price
    return requests, duration


def deliver_seconds_per_attempt(
    deliveries_per_s_one_core: float, memory_mb: int, receiver_ms: float, in_flight: int
) -> float:
    """Billed seconds of a busy deliver run per attempt: its CPU at the function's share of a vCPU,
    or, when receivers are slow, their answer time shared by the requests in flight."""
    cpu_bound = 1 / (deliveries_per_s_one_core * cpu_share(memory_mb))
    return max(cpu_bound, receiver_ms / 1000 / in_flight)


def deliver_cost_per_million(
    seconds_per_attempt: float, memory_mb: int, gb_second_price: float
) -> float:
    """Dollars per million attempts of deliver runs' billed time."""
    return 1e6 * seconds_per_attempt * memory_mb / 1024 * gb_second_price


def hourly_cost_per_million(price_per_hour: float, per_s: float) -> float:
    """Dollars per million events of something billed by the hour, carrying per_s events."""
    return price_per_hour / (per_s * 3600) * 1e6


def write_ios_per_event(wal_bytes: float, commits: float) -> float:
    """Aurora Standard's billed write I/Os: a 4 KiB unit of log each, and a commit needs one."""
    return max(commits, wal_bytes / IO_BYTES)


def per_million(count_per_event: float, price_per_million: float) -> float:
    return count_per_event * price_per_million


# The model


@dataclass(frozen=True)
class Capacity:
    writer: Writer
    ingested: float  # events/s, single-event requests
    delivered: float  # attempts/s
    both: float  # events/s ingested and delivered
    wal_mb_s: float  # at `both`
    both_batched_at_least: float  # events/s ingested in batches of 500 and delivered
    ingest_concurrency: float  # Lambda copies busy at `both`
    deliver_runs: int  # busy deliver runs at `both`


def ingest_billed_ms(m: Measured) -> int:
    return lambda_billed_ms(
        m.handler_cpu_ms, INGEST_MEMORY_MB, m.round_trips_ingest, ROUND_TRIP_MS, m.db_cpu_ingest_ms
    )


def batch_cpu_ms(m: Measured) -> float:
    """All CPU per event ingested in batches, bounded by the run's batch rate on its cores."""
    return cpu_ms_bound(m.bench_cores, m.ingest_batch_per_s)


def batch_billed_ms(m: Measured) -> int:
    # The bound is the whole machine's CPU per event, counted here as the handler's: an upper
    # bound on a batch request's billed time.
    return lambda_billed_ms(
        batch_cpu_ms(m) * BATCH, INGEST_MEMORY_MB, m.round_trips_ingest, ROUND_TRIP_MS, 0.0
    )


def capacity(m: Measured, writer: Writer) -> Capacity:
    per_event = m.db_cpu_ingest_ms + m.db_cpu_attempt_ms
    both = events_per_s(per_event, writer.vcpus, UTILISATION)
    deliver_s = deliver_seconds_per_attempt(
        m.deliveries_per_s, DELIVER_MEMORY_MB, RECEIVER_MS, IN_FLIGHT
    )
    return Capacity(
        writer=writer,
        ingested=events_per_s(m.db_cpu_ingest_ms, writer.vcpus, UTILISATION),
        delivered=events_per_s(m.db_cpu_attempt_ms, writer.vcpus, UTILISATION),
        both=both,
        wal_mb_s=wal_mb_per_s(both, m.wal_ingest_bytes + m.wal_attempt_bytes),
        both_batched_at_least=events_per_s(
            batch_cpu_ms(m) + m.db_cpu_attempt_ms, writer.vcpus, UTILISATION
        ),
        ingest_concurrency=both * ingest_billed_ms(m) / 1000,
        deliver_runs=math.ceil(both * deliver_s),
    )


@dataclass(frozen=True)
class DatabaseCost:
    """Dollars per million events, each part of the database's bill, for a writer at the planned
    utilisation doing db_cpu_ms of work per event."""

    per_s: float
    instance: float  # provisioned, Aurora Standard
    instance_io_optimized: float
    proxy: float  # RDS Proxy on the provisioned instance's vCPUs
    io: float  # Aurora Standard's write I/Os
    serverless: float  # Serverless v2 ACU-hours at ACU_PER_VCPU, Standard
    serverless_io_optimized: float
    proxy_serverless: float  # RDS Proxy on those ACUs

    @property
    def standard(self) -> float:
        return self.instance + self.proxy + self.io

    @property
    def io_optimized(self) -> float:
        return self.instance_io_optimized + self.proxy

    @property
    def serverless_standard(self) -> float:
        return self.serverless + self.proxy_serverless + self.io

    @property
    def serverless_io_optimized_total(self) -> float:
        return self.serverless_io_optimized + self.proxy_serverless


def database_cost(
    m: Measured, writer: Writer, db_cpu_ms: float, ingest_commits: float
) -> DatabaseCost:
    """ingest_commits: commits per event ingested (1 for single-event requests, 1/500 in
    batches); a delivered attempt's are its round trips (claim and record, each one commit)."""
    per_s = events_per_s(db_cpu_ms, writer.vcpus, UTILISATION)
    ios = write_ios_per_event(m.wal_ingest_bytes, ingest_commits) + write_ios_per_event(
        m.wal_attempt_bytes, m.round_trips_attempt
    )
    acus = writer.vcpus * ACU_PER_VCPU
    factor = PRICES["io_optimized_instance_factor"].value
    return DatabaseCost(
        per_s=per_s,
        instance=hourly_cost_per_million(writer.price_per_hour, per_s),
        instance_io_optimized=hourly_cost_per_million(writer.price_per_hour * factor, per_s),
        proxy=hourly_cost_per_million(writer.vcpus * PRICES["rds_proxy_vcpu_hour"].value, per_s),
        io=per_million(ios, PRICES["aurora_io"].value),
        serverless=hourly_cost_per_million(acus * PRICES["aurora_acu_hour"].value, per_s),
        serverless_io_optimized=hourly_cost_per_million(
            acus * PRICES["aurora_acu_hour_io_optimized"].value, per_s
        ),
        proxy_serverless=hourly_cost_per_million(acus * PRICES["rds_proxy_acu_hour"].value, per_s),
    )


@dataclass(frozen=True)
class EventCost:
    """Dollars per million events, each ingested and delivered once."""

    api_gateway: float
    lambda_requests: float
    lambda_ingest: float
    lambda_deliver: float
    database: DatabaseCost

    @property
    def compute(self) -> float:
        return self.api_gateway + self.lambda_requests + self.lambda_ingest + self.lambda_deliver


def event_cost(m: Measured, events_per_request: int) -> EventCost:
    """On the 2-vCPU writer; per event the larger ones cost the same (their prices are linear)."""
    batched = events_per_request > 1
    requests, ingest = lambda_cost_per_million_events(
        batch_billed_ms(m) if batched else ingest_billed_ms(m),
        INGEST_MEMORY_MB,
        events_per_request,
        PRICES["lambda_request"].value,
        PRICES["lambda_gb_second"].value,
    )
    deliver_s = deliver_seconds_per_attempt(
        m.deliveries_per_s, DELIVER_MEMORY_MB, RECEIVER_MS, IN_FLIGHT
    )
    ingest_cpu = batch_cpu_ms(m) if batched else m.db_cpu_ingest_ms
    return EventCost(
        api_gateway=PRICES["api_gateway_rest"].value / events_per_request,
        lambda_requests=requests,
        lambda_ingest=ingest,
        lambda_deliver=deliver_cost_per_million(
            deliver_s, DELIVER_MEMORY_MB, PRICES["lambda_gb_second"].value
        ),
        database=database_cost(
            m, WRITERS[0], ingest_cpu + m.db_cpu_attempt_ms, 1 / events_per_request
        ),
    )


def cost_rows(single: EventCost, batched: EventCost) -> list[tuple[str, float, float]]:
    """(line, one event a request, batches): the bill's parts, then the total for each way of
    running the database."""
    parts = [
        ("API Gateway REST requests", lambda c: c.api_gateway),
        ("Lambda requests (ingest)", lambda c: c.lambda_requests),
        ("Lambda duration, ingest", lambda c: c.lambda_ingest),
        ("Lambda duration, deliver", lambda c: c.lambda_deliver),
        ("Aurora instance (db.r6g, Standard)", lambda c: c.database.instance),
        ("Aurora I/O (Standard)", lambda c: c.database.io),
        ("RDS Proxy", lambda c: c.database.proxy),
        ("**total**, Aurora Standard", lambda c: c.compute + c.database.standard),
        ("**total**, Aurora I/O-Optimized", lambda c: c.compute + c.database.io_optimized),
        (
            "**total**, Serverless v2, Standard",
            lambda c: c.compute + c.database.serverless_standard,
        ),
        (
            "**total**, Serverless v2, I/O-Optimized",
            lambda c: c.compute + c.database.serverless_io_optimized_total,
        ),
    ]
    return [(name, part(single), part(batched)) for name, part in parts]


# Printing


def rounded(x: float, digits: int = 2) -> str:
    """x to `digits` significant figures, with thousands separators."""
    if x == 0:
        return "0"
    places = digits - 1 - math.floor(math.log10(abs(x)))
    value = round(x, places)
    if math.floor(math.log10(abs(value))) > math.floor(math.log10(abs(x))):
        places -= 1  # rounded up a power of ten: 9.96 is 10, not 10.0
    return f"{value:,.{max(0, places)}f}"


def money(x: float) -> str:
    return "$" + rounded(x)


def listed(p: Price) -> str:
    """A price as listed: every digit it has, no exponent."""
    digits = f"{p.value:.10f}".rstrip("0")
    if p.unit.startswith("times"):
        return f"{digits.rstrip('.')} {p.unit}"
    whole, _, cents = digits.partition(".")
    return f"${whole}.{cents.ljust(2, '0')} {p.unit}"


def prose(text: str) -> str:
    return textwrap.fill(text, width=96, break_long_words=False, break_on_hyphens=False)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def assumptions(m: Measured) -> str:
    deliver_ms = (
        deliver_seconds_per_attempt(m.deliveries_per_s, DELIVER_MEMORY_MB, RECEIVER_MS, IN_FLIGHT)
        * 1000
    )
    return (
        f"Assumed: an ingest request billed {ingest_billed_ms(m)} ms ({INGEST_MEMORY_MB} MB, "
        f"{cpu_share(INGEST_MEMORY_MB):.2f} vCPU: the handler's CPU, "
        f"{m.round_trips_ingest:.0f} round trip of {ROUND_TRIP_MS:.0f} ms and the database's "
        f"work), a batch at most {batch_billed_ms(m)} ms; a busy deliver run billed "
        f"{deliver_ms:.2f} ms an attempt ({DELIVER_MEMORY_MB} MB, receivers answering within "
        f"{RECEIVER_MS:.0f} ms, {IN_FLIGHT} in flight); a billed Aurora write I/O per "
        f"{IO_BYTES:,} bytes of WAL and at least one a commit, reads from cache, batches writing "
        f"the WAL per event single requests do; Serverless v2 at {ACU_PER_VCPU} ACU a vCPU."
    )


def render(m: Measured) -> str:
    factor = PRICES["io_optimized_instance_factor"].value
    inputs = [
        (DB_CPU_INGEST, f"{m.db_cpu_ingest_ms:.2f} ms"),
        (DB_CPU_ATTEMPT, f"{m.db_cpu_attempt_ms:.2f} ms"),
        (WAL_INGEST, f"{m.wal_ingest_bytes:,.0f} bytes"),
        (WAL_ATTEMPT, f"{m.wal_attempt_bytes:,.0f} bytes"),
        (TRIPS_INGEST, f"{m.round_trips_ingest:.2f}"),
        (TRIPS_ATTEMPT, f"{m.round_trips_attempt:.2f}"),
        (HANDLER_CPU, f"{m.handler_cpu_ms:.2f} ms"),
        (DELIVERIES, f"{m.deliveries_per_s:,.0f}/s"),
        (
            f"{INGEST_BATCH}: all CPU per event, at most",
            f"{batch_cpu_ms(m):.2f} ms ({m.bench_cores} cores / "
            f"{m.ingest_batch_per_s:,.0f} events/s)",
        ),
    ]
    capacities = [
        (
            f"{c.writer.vcpus} vCPU ({c.writer.instance_class})",
            f"${c.writer.price_per_hour:.2f} / ${c.writer.price_per_hour * factor:.2f}",
            rounded(c.ingested),
            rounded(c.delivered),
            rounded(c.both),
            rounded(c.wal_mb_s),
            "≥ " + rounded(c.both_batched_at_least),
            rounded(c.ingest_concurrency),
            str(c.deliver_runs),
        )
        for c in (capacity(m, w) for w in WRITERS)
    ]
    costs = [
        (name, money(single), money(batched))
        for name, single, batched in cost_rows(event_cost(m, 1), event_cost(m, BATCH))
    ]
    prices = [(p.label, listed(p), p.source, p.dated) for p in PRICES.values()] + [
        (
            f"Aurora {w.instance_class}",
            f"${w.price_per_hour:.2f} an hour ({w.vcpus} vCPU)",
            WRITER_SOURCE,
            f"undated; as known on {PRICES_CHECKED}",
        )
        for w in WRITERS
    ]
    return "\n".join(
        [
            prose(
                f"Inputs: bench/results.json of commit {m.commit} ({m.machine}). One event is one "
                f"ingest and one delivered attempt; a writer is planned at {UTILISATION:.0%} CPU."
            ),
            "",
            markdown(("measured figure", "value"), inputs),
            "",
            markdown(
                (
                    "one writer",
                    "$ an hour, Standard / I/O-Optimized",
                    "events/s ingested",
                    "attempts/s delivered",
                    "events/s ingested and delivered",
                    "WAL MB/s at that",
                    "the same, ingested in batches of 500",
                    "ingest Lambdas busy",
                    "deliver runs busy",
                ),
                capacities,
            ),
            "",
            markdown(
                ("$ per million events", "1 event a request", f"batches of {BATCH}, at most"), costs
            ),
            "",
            prose(assumptions(m)),
            "",
            markdown((f"price ({REGION}, on demand)", "list price", "source", "dated"), prices),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else RESULTS
    print(render(measured(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
