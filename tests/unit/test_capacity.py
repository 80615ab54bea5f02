"""bench/capacity.py, the README's capacity model: its arithmetic, table by table, and the tables
it prints from a bench/results.json of known figures."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("capacity", ROOT / "bench" / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


capacity = _load()


@pytest.mark.parametrize(
    ("cpu_ms", "vcpus", "utilisation", "expected"),
    [
        (1.0, 2, 0.7, 1400),  # 2 vCPU x 1000 ms x 70 % / 1 ms
        (0.5, 8, 1.0, 16000),
        (2.0, 32, 0.5, 8000),
        (1.1886, 2, 0.7, 1177.86),  # the README's 2-vCPU single-event ingest
    ],
)
def test_events_per_second_from_cpu_per_event_vcpus_and_headroom(
    cpu_ms, vcpus, utilisation, expected
):
    assert capacity.events_per_s(cpu_ms, vcpus, utilisation) == pytest.approx(expected, rel=1e-4)


def test_a_rate_measured_on_shared_cores_bounds_the_cpu_of_each_item():
    assert capacity.cpu_ms_bound(2, 10_000) == pytest.approx(0.2)
    assert capacity.cpu_ms_bound(4, 1_000) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("per_s", "wal_bytes", "mb_s"), [(1000, 4000, 4.0), (16_000, 3983, 63.728), (0, 2000, 0)]
)
def test_wal_volume_a_second(per_s, wal_bytes, mb_s):
    assert capacity.wal_mb_per_s(per_s, wal_bytes) == pytest.approx(mb_s)


@pytest.mark.parametrize(
    ("memory_mb", "share"), [(1769, 1.0), (3538, 1.0), (1024, 1024 / 1769), (512, 512 / 1769)]
)
def test_a_lambda_function_has_a_vcpu_in_proportion_to_memory_one_thread_at_most(memory_mb, share):
    assert capacity.cpu_share(memory_mb) == pytest.approx(share)


@pytest.mark.parametrize(
    ("handler_ms", "memory_mb", "trips", "trip_ms", "db_ms", "billed"),
    [
        (1.0, 1769, 1, 3.0, 1.0, 5),  # a whole vCPU: 1 + 3 + 1
        (1.0, 1024, 1, 3.0, 1.19, 6),  # 1.73 + 3 + 1.19 = 5.92, billed in whole ms
        (2.0, 3538, 0, 0.0, 0.0, 2),  # more memory gives one thread no more than a vCPU
        (91.5, 1024, 1, 3.0, 0.0, 162),  # 158.07 + 3
    ],
)
def test_billed_duration_is_cpu_at_the_share_plus_round_trips_and_database_work(
    handler_ms, memory_mb, trips, trip_ms, db_ms, billed
):
    assert capacity.lambda_billed_ms(handler_ms, memory_mb, trips, trip_ms, db_ms) == billed


@pytest.mark.parametrize(
    ("billed_ms", "memory_mb", "events", "requests", "duration"),
    [
        # a million requests of 10 ms at 1 GB: 10,000 GB-s
        (10, 1024, 1, 0.20, 10_000 * 1e-5),
        # 2,000 requests of 100 ms at 1 GB: 200 GB-s
        (100, 1024, 500, 0.20 / 500, 200 * 1e-5),
        (10, 512, 1, 0.20, 5_000 * 1e-5),
    ],
)
def test_lambda_cost_per_million_events(billed_ms, memory_mb, events, requests, duration):
    got = capacity.lambda_cost_per_million_events(billed_ms, memory_mb, events, 0.20, 1e-5)
    assert got == pytest.approx((requests, duration))


@pytest.mark.parametrize(
    ("per_s", "memory_mb", "receiver_ms", "in_flight", "seconds"),
    [
        (1769, 1769, 50, 100, 1 / 1769),  # CPU-bound: 0.57 ms > 0.5 ms
        (2000, 1769, 500, 100, 0.005),  # slow receivers: 500 ms shared by 100 in flight
        (1875, 1024, 50, 100, 1 / (1875 * 1024 / 1769)),
    ],
)
def test_a_busy_deliver_run_is_billed_its_cpu_or_its_receivers_wait(
    per_s, memory_mb, receiver_ms, in_flight, seconds
):
    got = capacity.deliver_seconds_per_attempt(per_s, memory_mb, receiver_ms, in_flight)
    assert got == pytest.approx(seconds)


def test_deliver_cost_per_million_attempts():
    # a million attempts of 1 ms at 1 GB: 1,000 GB-s
    assert capacity.deliver_cost_per_million(0.001, 1024, 1e-5) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("price_per_hour", "per_s", "dollars"),
    [(3.6, 1000, 1.0), (0.26, 1027.4, 0.0703), (4.16, 16_439, 0.0703)],
)
def test_an_hourly_price_per_million_events(price_per_hour, per_s, dollars):
    assert capacity.hourly_cost_per_million(price_per_hour, per_s) == pytest.approx(
        dollars, rel=1e-3
    )


@pytest.mark.parametrize(
    ("wal_bytes", "commits", "ios"),
    [(2048, 1, 1), (8192, 0.01, 2), (1952, 1 / 500, 1952 / 4096), (0, 0.03, 0.03)],
)
def test_aurora_write_ios_are_4_kib_of_log_and_at_least_one_a_commit(wal_bytes, commits, ios):
    assert capacity.write_ios_per_event(wal_bytes, commits) == pytest.approx(ios)


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (1177.86, "1,200"),
        (16_439, "16,000"),
        (128_700, "130,000"),
        (0.0703, "0.070"),
        (3.5, "3.5"),
        (9.96, "10"),
        (0.000404, "0.00040"),
        (0, "0"),
    ],
)
def test_figures_are_printed_to_two_significant_figures(x, text):
    assert capacity.rounded(x) == text


def test_the_larger_writers_cost_the_same_per_event_as_their_prices_are_linear():
    per_vcpu = {w.price_per_hour / w.vcpus for w in capacity.WRITERS}
    assert max(per_vcpu) == pytest.approx(min(per_vcpu))
    assert [w.vcpus for w in capacity.WRITERS] == [2, 8, 32]


def test_every_price_says_where_it_was_read_and_when():
    for price in capacity.PRICES.values():
        assert price.value > 0
        assert price.source and re.search(r"\d{4}-\d{2}", price.dated), price


def _block(text: str, header: str) -> str:
    """The lines of template.yaml from `header` to the next line as little indented."""
    lines = text.splitlines()
    start = lines.index(header)
    indent = len(header) - len(header.lstrip())
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent
        ),
        len(lines),
    )
    return "\n".join(lines[start:end])


def test_the_memory_sizes_and_concurrency_are_the_templates():
    template = (ROOT / "template.yaml").read_text()
    assert f"MemorySize: {capacity.INGEST_MEMORY_MB}" in _block(template, "Globals:")
    assert capacity.DELIVER_MEMORY_MB == capacity.INGEST_MEMORY_MB
    for function in ("  IngestFunction:", "  DeliverFunction:"):
        assert "MemorySize" not in _block(template, function)  # the Globals' size, then
    assert f"Default: {capacity.IN_FLIGHT}" in _block(template, "  DeliveryConcurrency:")


# A run of known figures: each number below follows from them by hand.
FIGURES = {
    capacity.DB_CPU_INGEST: 0.9,
    capacity.DB_CPU_ATTEMPT: 0.1,
    capacity.WAL_INGEST: 1000,
    capacity.WAL_ATTEMPT: 1000,
    capacity.TRIPS_INGEST: 1.0,
    capacity.TRIPS_ATTEMPT: 0.02,
    capacity.HANDLER_CPU: 1.0,
    capacity.DELIVERIES: 2000,
    capacity.INGEST_BATCH: 10_000,
    "ingest, 1 event/request, HTTP, limits on": 500,  # not read; results have every figure
}


def _results(tmp_path: Path, figures: dict[str, float]) -> Path:
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            {
                "machine": "x86_64, 2 cores, Linux test, Python 3.11.7",
                "commit": "abc1234",
                "figures": [
                    {"figure": name, "value": value, "unit": "", "baseline": None}
                    for name, value in figures.items()
                ],
            }
        )
    )
    return path


def test_main_prints_the_model_of_a_results_file(tmp_path, capsys):
    assert capacity.main([str(_results(tmp_path, FIGURES))]) == 0
    out = capsys.readouterr().out
    assert "commit abc1234 (x86_64, 2 cores" in out
    # 2 vCPU at 70 %: 1,400 ms of CPU a second. Ingest alone 1,400 / 0.9 = 1,556; delivery
    # alone 14,000; both 1,400 / 1.0; WAL 1,400 x 2,000 bytes = 2.8 MB/s; in batches, at most
    # 2 cores / 10,000 events/s = 0.2 ms, so at least 1,400 / 0.3 = 4,667. An ingest request is
    # billed ceil(1.0 / 0.579 + 3 + 0.9) = 6 ms: 1,400 x 6 ms = 8.4 busy; an attempt
    # 1 / (2,000 x 0.579) = 0.86 ms (over the receivers' 0.5): ceil(1,400 x 0.86 ms) = 2 runs.
    cells = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("| ")
    ]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["2 vCPU (db.r6g.large)"] == [
        "$0.26 / $0.34",
        "1,600",
        "14,000",
        "1,400",
        "2.8",
        "≥ 4,700",
        "8.4",
        "2",
    ]
    # 32 vCPU: 16 times as much.
    assert rows["32 vCPU (db.r6g.8xlarge)"] == [
        "$4.16 / $5.41",
        "25,000",
        "220,000",
        "22,000",
        "45",
        "≥ 75,000",
        "130",
        "20",
    ]
    # API Gateway: $3.50 a million requests, one per event or one per 500.
    assert rows["API Gateway REST requests"] == ["$3.5", "$0.0070"]
    # 6 ms x 1 GB x a million = 6,000 GB-s at $0.0000166667.
    assert rows["Lambda duration, ingest"][0] == "$0.10"
    # $0.26 an hour / (1,400 events/s x 3,600 s) x a million.
    assert rows["Aurora instance (db.r6g, Standard)"][0] == "$0.052"
    # Write I/Os: 1 for the ingest's commit, 1,000 / 4,096 for the attempt, at $0.20 a million.
    assert rows["Aurora I/O (Standard)"][0] == "$0.25"
    # Batched: 1,000 / 4,096 for each: $0.098.
    assert rows["Aurora I/O (Standard)"][1] == "$0.098"
    # $0.03 an hour of proxy / 1,400 events/s.
    assert rows["RDS Proxy"][0] == "$0.0060"
    # 3.50 + 0.20 + 0.10 + 0.0144 (deliver) + 0.0516 + 0.2488 + 0.0060 = 4.12.
    assert rows["**total**, Aurora Standard"][0] == "$4.1"
    # Every price is listed with its source.
    assert "| Lambda duration | $0.0000166667 per GB-second" in out


def test_a_results_file_without_a_figure_the_model_needs_is_refused_by_name(tmp_path):
    figures = {k: v for k, v in FIGURES.items() if k != capacity.WAL_ATTEMPT}
    with pytest.raises(KeyError, match=re.escape(capacity.WAL_ATTEMPT)):
        capacity.main([str(_results(tmp_path, figures))])


def test_the_readme_shows_what_the_script_prints_from_the_checked_in_results(capsys):
    capacity.main([str(ROOT / "bench" / "results.json")])
    printed = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text()
    blocks = printed.strip().split("\n\n")
    assert len([block for block in blocks if block.startswith("| ")]) == 4
    for block in blocks:
        assert block in readme, (
            "README's Capacity model shows other figures than `.venv/bin/python bench/capacity.py`"
            " prints from bench/results.json: paste its output in again"
        )


def test_rounding_never_prints_more_digits_than_it_keeps():
    for x in (0.0012345, 1.2345, 12.345, 123_456.0):
        digits = re.sub(r"[^0-9]", "", capacity.rounded(x)).lstrip("0")
        assert len(digits.rstrip("0")) <= 2
        assert math.isclose(float(capacity.rounded(x).replace(",", "")), x, rel_tol=0.05)
