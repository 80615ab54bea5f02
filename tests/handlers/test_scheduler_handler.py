"""The scheduler Lambda invoked with the `events/scheduler_*.json` samples, as `sam local invoke`
does: each runs its job, returns its report and emits its metrics (EMF on stdout)."""

from __future__ import annotations

import json

import pytest

from hookpost.jobs import JOBS, UnknownJob
from hookpost.local.gateway import LocalLambdaContext, load_handler
from support_process import ROOT

SAMPLES = sorted((ROOT / "events").glob("scheduler_*.json"))


@pytest.fixture(scope="module")
def scheduler_handler():
    return load_handler(ROOT / "functions" / "scheduler" / "app.py")


def emf_blobs(output: str) -> list[dict]:
    blobs = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [blob for blob in blobs if "_aws" in blob]


def test_there_is_a_sample_for_every_job():
    assert {json.loads(path.read_text())["task"] for path in SAMPLES} == set(JOBS)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_each_sample_runs_its_job(scheduler_handler, database_url, capsys, sample):
    event = json.loads(sample.read_text())

    report = scheduler_handler(event, LocalLambdaContext())

    assert report["job"] == event["task"]
    assert report["counts"] and all(isinstance(v, int) for v in report["counts"].values())
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Hookpost"
    assert blob["job"] == event["task"]
    assert blob["service"] == "scheduler"
    assert "Duration" in blob


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_an_unknown_task_fails_the_invocation(scheduler_handler, database_url):
    with pytest.raises(UnknownJob):
        scheduler_handler({"task": "vacuum"}, LocalLambdaContext())
    with pytest.raises(UnknownJob):
        scheduler_handler({}, LocalLambdaContext())
