"""The jobs' pure parts: `make dev`'s schedule, refresh chunks, metric names, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hookpost.config import JobSettings
from hookpost.jobs import JOBS, metric_name
from hookpost.jobs.periodic import Schedule
from hookpost.jobs.recover_leases import runs_to_wake
from hookpost.jobs.refresh_views import chunks


def test_every_job_is_due_at_start_then_each_on_its_period():
    schedule = Schedule({"recover_leases": 30, "refresh_views": 60, "cleanup": 0}, now=100)
    assert schedule.take_due(100) == ["recover_leases", "refresh_views"]
    assert schedule.take_due(100) == []
    assert schedule.wait_s(100) == 30
    assert schedule.take_due(131) == ["recover_leases"]
    assert schedule.wait_s(131) == 29
    assert schedule.take_due(160) == ["refresh_views"]


def test_a_late_run_does_not_pile_up():
    schedule = Schedule({"recover_leases": 30}, now=0)
    schedule.take_due(0)
    assert schedule.take_due(1000) == ["recover_leases"]
    assert schedule.take_due(1001) == []
    assert schedule.wait_s(1001) == 29


def test_nothing_scheduled():
    assert Schedule({"cleanup": 0}, now=0).wait_s(0) is None


def test_chunks():
    day = datetime(2025, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert list(chunks(day, day + 50 * hour)) == [
        (day, day + 24 * hour),
        (day + 24 * hour, day + 48 * hour),
        (day + 48 * hour, day + 50 * hour),
    ]
    assert list(chunks(day, day)) == []


def test_metric_names_are_camel_case():
    assert metric_name("leases_recovered") == "LeasesRecovered"


def test_job_settings(monkeypatch):
    defaults = JobSettings.from_env()
    assert defaults.every_s == {"recover_leases": 30, "refresh_views": 60, "cleanup": 3600}
    assert set(defaults.every_s) == set(JOBS)
    assert not defaults.cleanup_dry_run
    monkeypatch.setenv("HOOKPOST_REFRESH_VIEWS_EVERY_S", "5")
    monkeypatch.setenv("HOOKPOST_CLEANUP_DRY_RUN", "true")
    changed = JobSettings.from_env()
    assert changed.every_s["refresh_views"] == 5
    assert changed.cleanup_dry_run


def test_extra_deliver_runs_only_for_a_deep_backlog():
    assert [runs_to_wake(n) for n in (0, 1, 10_000, 10_001, 35_000)] == [0, 0, 0, 1, 3]
    assert runs_to_wake(10_000_000) == 10
