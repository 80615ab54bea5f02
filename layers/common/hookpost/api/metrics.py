"""What the ingest function counts for CloudWatch (namespace Hookpost, service=ingest): events
stored, and requests the in-function limits refused. The dashboard and alarms read these."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled


def record(metrics: Metrics, event: dict[str, Any], response: dict[str, Any]) -> None:
    if is_metrics_disabled():
        # Powertools would still print a batch every 100 values (`make dev` sets this).
        return
    status = response.get("statusCode")
    if status == 429:
        metrics.add_metric(name="LimitRejections", unit=MetricUnit.Count, value=1)
    elif status == 202 and event.get("httpMethod") == "POST":
        path = (event.get("path") or "").rstrip("/")
        if path.endswith("/events"):
            stored = 1
        elif path.endswith("/events/batch"):
            stored = sum(not r["duplicate"] for r in json.loads(response["body"])["data"])
        else:
            return
        metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=stored)
