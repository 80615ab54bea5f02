"""Ingest Lambda: API Gateway (REST, proxy) events into the Hookpost API."""

from aws_lambda_powertools.logging import correlation_paths

from hookpost.api.app import handle, logger


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: object) -> dict:
    return handle(event, context)
