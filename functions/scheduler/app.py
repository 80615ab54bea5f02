"""Scheduler Lambda: one EventBridge rule per job, the job named in the rule's constant input,
e.g. `{"task": "recover_leases"}`. An unknown task fails the invocation, so a misconfigured rule
shows up as errors rather than as silence."""

from aws_lambda_powertools import Logger, Metrics

from hookpost import jobs

# The `hookpost` logger: hookpost.jobs' records propagate to it and come out as JSON.
logger = Logger(service="hookpost")
metrics = Metrics(namespace=jobs.METRICS_NAMESPACE, service=jobs.METRICS_SERVICE)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    return jobs.run(event.get("task"), metrics).as_dict()
