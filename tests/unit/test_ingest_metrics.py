"""The ingest function's EMF documents, written directly, are the ones powertools' Metrics would
flush for the same counts."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from hookpost.api.metrics import NAMESPACE, SERVICE, emf


@pytest.mark.parametrize(
    ("name", "value"),
    [("EventsIngested", 1), ("EventsIngested", 0), ("LimitRejections", 1), ("EventsIngested", 500)],
)
def test_a_count_is_written_as_powertools_writes_it(name, value):
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    expected = metrics.serialize_metric_set()
    metrics.clear_metrics()

    written = json.loads(emf(name, value, expected["_aws"]["Timestamp"]))

    assert written == expected
    assert list(written) == list(expected)
