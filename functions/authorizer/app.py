"""Authorizer Lambda: maps the bearer credential of an API request to its usage-plan key."""

from aws_lambda_powertools.logging import correlation_paths

from hookpost.aws.authorizer import authorize, logger


# A REQUEST authorizer's event carries the API request's id, as the ingest function's does.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: object) -> dict:
    return authorize(event)
