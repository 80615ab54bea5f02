"""The template's `Custom::Migration` resource: pending migrations applied on every deploy that
changes the layer (where the migrations live), before the functions get the new code; then the
application's database role made or brought up to date (`hookpost.db.roles`).

The migrate function alone connects as the master user (HOOKPOST_DATABASE_SECRET_ID); the role's
credentials are in their own secret (HOOKPOST_APPLICATION_DATABASE_SECRET_ID), which every other
function connects with."""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

from hookpost.aws import custom_resource
from hookpost.aws.custom_resource import logger
from hookpost.config import get_settings
from hookpost.db.migrate import migrate
from hookpost.db.roles import ensure_application_role

APPLICATION_SECRET_ENV = "HOOKPOST_APPLICATION_DATABASE_SECRET_ID"
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
            database_url = get_settings().database_url
            applied = migrate(database_url)
            secret_id = os.environ.get(APPLICATION_SECRET_ENV)
            if secret_id:
                from hookpost.secrets_manager import credentials

                ensure_application_role(database_url, *credentials(secret_id))
            return {"Applied": ", ".join(applied) or "none"}
        except psycopg.OperationalError as exc:
            left_s = context.get_remaining_time_in_millis() / 1000
            if left_s < _ANSWER_MARGIN_S + RETRY_PAUSE_S:
                raise
            logger.warning("database not reachable yet; retrying", extra={"error": str(exc)})
            time.sleep(RETRY_PAUSE_S)
