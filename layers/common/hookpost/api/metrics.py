"""What the ingest function counts for CloudWatch (namespace Hookpost, service=ingest): events
stored, and requests the in-function limits refused. The dashboard and alarms read these.

Each request that counts something prints its one embedded-metric-format (EMF) document, the
one powertools' `Metrics` would flush after it, written here directly: that class's add,
checks and flush were an eighth of a single event's CPU on Lambda (callgrind)."""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.metrics.functions import is_metrics_disabled

NAMESPACE = "Hookpost"
SERVICE = "ingest"


def record(event: dict[str, Any], response: dict[str, Any]) -> None:
    """Print the count a request makes, if any: none while metrics are disabled (`make dev`)."""
    if is_metrics_disabled():
        return
    status = response.get("statusCode")
    if status == 429:
        name, value = "LimitRejections", 1
    elif status == 202 and event.get("httpMethod") == "POST":
        path = (event.get("path") or "").rstrip("/")
        if path.endswith("/events"):
            name, value = "EventsIngested", 1
        elif path.endswith("/events/batch"):
            name = "EventsIngested"
            value = sum(not r["duplicate"] for r in json.loads(response["body"])["data"])
        else:
            return
    else:
        return
    print(emf(name, value, int(time.time() * 1000)))


def emf(name: str, value: float, timestamp_ms: int) -> str:
    """The EMF document of one count, as powertools writes it (unit Count, the dimension
    service, standard resolution), from a template: json.dumps of the document cost more."""
    return _EMF % (timestamp_ms, json.dumps(name), json.dumps(name), float(value))


_EMF = (
    '{"_aws":{"Timestamp":%d,"CloudWatchMetrics":[{"Namespace":"' + NAMESPACE + '",'
    '"Dimensions":[["service"]],"Metrics":[{"Name":%s,"Unit":"Count"}]}]},'
    '"service":"' + SERVICE + '",%s:[%r]}'
)
