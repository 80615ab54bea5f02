"""The template's `Custom::Migration` resource: pending migrations applied on every deploy that
changes the layer (where the migrations live), before the functions get the new code."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from hookpost.aws import custom_resource
from hookpost.aws.custom_resource import logger
from hookpost.config import get_settings
from hookpost.db.migrate import migrate

PHYSICAL_RESOURCE_ID = "hookpost-migrations"
RETRY_PAUSE_S = 10.0
# Time kept back to answer CloudFormation before the function's timeout.
_ANSWER_MARGIN_S = 30.0


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return custom_resource.handle(
        event, context, lambda: apply_migrations(context), PHYSICAL_RESOURCE_ID
    )


def apply_migrations(context: Any) -> dict[str, str]:
    """Migrate, retrying while the database cannot be reached: on a stack's first deploy the
    new proxy's target registers some minutes after CloudFormation reports it created."""
    while True:
        try:
            applied = migrate(get_settings().database_url)
            return {"Applied": ", ".join(applied) or "none"}
        except psycopg.OperationalError as exc:
            left_s = context.get_remaining_time_in_millis() / 1000
            if left_s < _ANSWER_MARGIN_S + RETRY_PAUSE_S:
                raise
            logger.warning("database not reachable yet; retrying", extra={"error": str(exc)})
            time.sleep(RETRY_PAUSE_S)
