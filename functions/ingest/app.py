"""Ingest Lambda: API Gateway (REST, proxy) events into the Hookpost API."""

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.logging import correlation_paths

from hookpost.api import metrics as ingest_metrics
from hookpost.api.app import handle, logger

metrics = Metrics(namespace="Hookpost", service="ingest")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: object) -> dict:
    response = handle(event, context)
    ingest_metrics.record(metrics, event, response)
    return response
