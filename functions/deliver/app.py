"""Deliver Lambda: on its EventBridge schedule, deliver due attempts until shortly before the
invocation's deadline, then return what it did (polling only: LISTEN would pin an RDS Proxy
connection). Woken by ingest between schedules, it stops as soon as nothing is due."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hookpost.aws.wake import WAKE_EVENT
from hookpost.delivery.runners import run_for_lambda

# The `hookpost` logger: hookpost.delivery's records propagate to it and come out as JSON.
logger = Logger(service="hookpost")
metrics = Metrics(namespace="Hookpost", service="deliver")

METRIC_NAMES = {
    "claimed": "AttemptsClaimed",
    "succeeded": "AttemptsSucceeded",
    "failed": "AttemptsFailed",
    "gave_up": "AttemptsGaveUp",
    "expired": "AttemptsExpired",
    "released": "AttemptsReleased",
    "recovered": "LeasesRecovered",
}


def record_latency(milliseconds: int) -> None:
    metrics.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=milliseconds)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict[str, int]:
    summary = run_for_lambda(
        context.get_remaining_time_in_millis, record_latency, until_idle=event == WAKE_EVENT
    ).as_dict()
    for name, value in summary.items():
        metrics.add_metric(name=METRIC_NAMES[name], unit=MetricUnit.Count, value=value)
    # One a finished run, whatever it found to do: the template's alarm on its absence says
    # that deliver is not running (throttled, failing, its schedule gone).
    metrics.add_metric(name="Heartbeat", unit=MetricUnit.Count, value=1)
    return summary
