"""Ingest Lambda: API Gateway (REST, proxy) events into the Hookpost API."""

from hookpost.api import metrics
from hookpost.api.app import handle, logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    # The correlation id is API Gateway's request id (correlation_paths.API_GATEWAY_REST), read
    # here rather than by the decorator's JMESPath search, which cost more than the read.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    response = handle(event, context)
    metrics.record(event, response)
    return response
