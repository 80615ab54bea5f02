"""Migrate Lambda: the template's `Custom::Migration` resource, applying pending migrations on
every deploy that changes the layer, and answering CloudFormation."""

from hookpost.aws.migration import handle, logger


@logger.inject_lambda_context(correlation_id_path="RequestId")
def lambda_handler(event: dict, context: object) -> dict:
    return handle(event, context)
