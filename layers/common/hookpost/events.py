"""An event as a client sends it: what ingest validates and stores."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hookpost.fields import EventTypeName, InputTimestamp, Strict, StringMap

ORDERING_KEY_DESCRIPTION = (
    "what orders delivery to subscriptions with `ordering: per_key`: the events of one key go"
    " to such a subscription one at a time, in the order they were accepted; the event type"
    " when not given"
)
DELIVER_AT_DESCRIPTION = "send no earlier than this; a past time (or none) means now"
EXPIRES_AT_DESCRIPTION = (
    "attempts not sent by this time end as `expired` instead of being sent; must be in the"
    " future and after `deliver_at`. Replays and manual retries are sent even after it"
)
PRIORITY_DESCRIPTION = (
    "`high`, `normal` or `low`: within a subscription's share of a claim, higher priority goes"
    " first (the events of one key of a `per_key` subscription still go in order); fairness"
    " across applications is unchanged"
)
Priority = Literal["high", "normal", "low"]
# As stored (events.priority, attempts.priority): the claim orders by it, highest first.
PRIORITY_RANK: dict[str, int] = {"high": 1, "normal": 0, "low": -1}


class EventIn(Strict):
    event_type: EventTypeName
    payload: Any = Field(description="any JSON value; checked against the type's schema")
    event_id: str | None = Field(
        None, min_length=1, max_length=255, description="idempotency key, unique per application"
    )
    labels: StringMap = Field(default_factory=dict)
    occurred_at: InputTimestamp | None = None
    ordering_key: str | None = Field(
        None, min_length=1, max_length=255, description=ORDERING_KEY_DESCRIPTION
    )
    deliver_at: InputTimestamp | None = Field(None, description=DELIVER_AT_DESCRIPTION)
    expires_at: InputTimestamp | None = Field(None, description=EXPIRES_AT_DESCRIPTION)
    priority: Priority = Field("normal", description=PRIORITY_DESCRIPTION)
