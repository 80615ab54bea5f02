"""CloudFormation custom resources backed by a Lambda: the answer CloudFormation waits for is a
PUT of a small JSON document to the presigned S3 URL in the request (what AWS's `cfn-response`
module does; it is not on PyPI, and this is all of it that we need)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="hookpost")

SUCCESS = "SUCCESS"
FAILED = "FAILED"
# CloudFormation refuses a response over 4 KiB; the reason is the only part that can grow.
_MAX_REASON = 1000


def handle(
    event: dict[str, Any],
    context: Any,
    apply: Callable[[], dict[str, str]],
    physical_resource_id: str,
) -> dict[str, Any]:
    """Run `apply` on Create and Update (its result becomes the resource's attributes), do
    nothing on Delete, and answer CloudFormation either way; returns the answer sent.

    The physical id never changes, so an Update never turns into a replacement followed by a
    Delete. A failure answers FAILED with the error as the reason, which CloudFormation shows in
    the stack's events and rolls back on. If the answer cannot be sent, the error propagates:
    Lambda retries the asynchronous invocation, and `apply` must be safe to run again.
    """
    try:
        data = apply() if event["RequestType"] in ("Create", "Update") else {}
        body = response_body(event, context, SUCCESS, physical_resource_id, data=data)
    except Exception as exc:
        logger.exception("custom resource failed", extra={"request_type": event["RequestType"]})
        body = response_body(event, context, FAILED, physical_resource_id, reason=str(exc))
    send(event["ResponseURL"], body)
    return body


def response_body(
    event: dict[str, Any],
    context: Any,
    status: str,
    physical_resource_id: str,
    *,
    data: dict[str, str] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    where = f"see CloudWatch Logs: {context.log_group_name} {context.log_stream_name}"
    return {
        "Status": status,
        "Reason": f"{reason}; {where}"[:_MAX_REASON] if reason else where,
        "PhysicalResourceId": physical_resource_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": data or {},
    }


def send(url: str, body: dict[str, Any], timeout_s: float = 30.0) -> None:
    payload = json.dumps(body).encode()
    # The URL is presigned for an empty content type: urllib would add a form type otherwise.
    request = urllib.request.Request(url, data=payload, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()
