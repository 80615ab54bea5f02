"""Waking the deliver function between its once-a-minute schedules: sub-minute latency on AWS.

EventBridge schedules fire at most once a minute. So whoever writes due attempts (ingest,
replay, retry) calls `wake_deliver()`, which starts a deliver run at once by an asynchronous
invocation carrying WAKE_EVENT; the scheduler may wake several copies when the backlog is deep.
The deliver function's reserved concurrency bounds how many runs exist at once: invocations
beyond it wait in Lambda's queue and are dropped after a minute (the template's
EventInvokeConfig), by when the schedule has started a run anyway. Each container wakes at most
once per HOOKPOST_DELIVER_WAKE_INTERVAL_S (1 s by default), so a burst of requests is one wake.

Only on AWS: the template sets HOOKPOST_DELIVER_FUNCTION_NAME. Locally the deliver loop is woken
by PostgreSQL's LISTEN/NOTIFY instead.
"""

from __future__ import annotations

import json
import os
import threading
import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

DELIVER_FUNCTION_ENV = "HOOKPOST_DELIVER_FUNCTION_NAME"
WAKE_INTERVAL_ENV = "HOOKPOST_DELIVER_WAKE_INTERVAL_S"
# What a woken deliver run receives, telling it from a scheduled run: it may stop as soon as
# nothing is due instead of looping until its time is up.
WAKE_EVENT = {"hookpost": "wake"}

logger = Logger(service="hookpost")

_lock = threading.Lock()
_last_wake = float("-inf")


def wake_deliver(copies: int = 1) -> int:
    """Start `copies` deliver runs now, unless this container woke one within the interval or
    is not on AWS; returns how many were started. Never raises: a failed wake only delays
    delivery until the next scheduled run, which must not fail the request that asked."""
    global _last_wake
    function_name = os.environ.get(DELIVER_FUNCTION_ENV)
    if not function_name or copies < 1:
        return 0
    interval_s = float(os.environ.get(WAKE_INTERVAL_ENV) or 1.0)
    with _lock:
        now = time.monotonic()
        if now - _last_wake < interval_s:
            return 0
        _last_wake = now
    payload = json.dumps(WAKE_EVENT).encode()
    started = 0
    try:
        for _ in range(copies):
            _client().invoke(FunctionName=function_name, InvocationType="Event", Payload=payload)
            started += 1
    except (BotoCoreError, ClientError) as exc:
        logger.warning("could not wake the deliver function", extra={"error": str(exc)})
    return started


@cache
def _client() -> Any:
    # Imported here: boto3 takes a while to load, and only functions on AWS need it.
    import boto3
    from botocore.config import Config

    # Short timeouts and one retry: the caller is usually an API request waiting on this.
    config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2})
    return boto3.client("lambda", config=config)
