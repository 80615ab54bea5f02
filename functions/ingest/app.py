"""Ingest Lambda: API Gateway (REST, proxy) events into the Hookpost API."""

from aws_lambda_powertools import Metrics

from hookpost.api import metrics as ingest_metrics
from hookpost.api.app import handle, logger

metrics = Metrics(namespace="Hookpost", service="ingest")


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    # The correlation id is API Gateway's request id (correlation_paths.API_GATEWAY_REST), read
    # here rather than by the decorator's JMESPath search, which cost more than the read.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    response = handle(event, context)
    ingest_metrics.record(metrics, event, response)
    return response
