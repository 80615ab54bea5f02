"""Liveness with the one dependency that matters: can we reach PostgreSQL."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api import models
from hookpost.api.responses import json_response
from hookpost.db import queries
from hookpost.db.pool import DatabaseUnavailable
from hookpost.db.run import fetch_one

router = Router()


@router.get("/health", tags=["health"])
def health() -> Response[models.Health]:
    try:
        fetch_one(queries.HEALTH_CHECK)
    except DatabaseUnavailable:
        return json_response(503, {"status": "degraded", "database": "unavailable"})
    return json_response(200, {"status": "ok", "database": "ok"})
