"""The fetch links of thin deliveries: no credentials, the link itself is one (hookpost.links)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api import models
from hookpost.api.responses import Problem, json_response
from hookpost.db import queries
from hookpost.db.run import fetch_one
from hookpost.errors import NotFound
from hookpost.links import read_token

router = Router()

Token = Annotated[str, Path(min_length=1, max_length=200, description="the link's token")]


@router.get("/fetch/<token>", tags=["events"])
def fetch_event(token: Token) -> Response[models.FetchedEvent]:
    """The full event of a thin delivery, for 24 hours after it was sent. A link that was never
    made (guessed, altered) answers 404; one past its time, 410."""
    link = read_token(token)
    row = (
        fetch_one(
            queries.FETCH_LINK_EVENT,
            {"event_id": link.event_id, "subscription_id": link.subscription_id},
        )
        if link
        else None
    )
    secrets = [row["secret"], row["previous_secret"]] if row else []
    if link is None or not any(secret and link.signed_with(secret) for secret in secrets):
        raise NotFound("link")
    if link.expired:
        raise Problem(410, "this link has expired", slug="gone")
    return json_response(
        200,
        {
            "id": row["id"],
            "event_id": row["event_id"],
            "type": row["event_type"],
            "timestamp": row["occurred_at"],
            "data": row["payload"],
        },
    )
