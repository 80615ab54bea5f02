"""Request and response bodies: what the OpenAPI document says and what validation enforces."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from hookpost.events import (
    DELIVER_AT_DESCRIPTION,
    EXPIRES_AT_DESCRIPTION,
    ORDERING_KEY_DESCRIPTION,
    PRIORITY_DESCRIPTION,
    EventIn,
    Priority,
)
from hookpost.fields import EventTypeName, InputTimestamp, Strict, StringMap
from hookpost.operational import OPERATIONAL_EVENT_TYPES
from hookpost.timestamps import rfc3339

Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Page(BaseModel):
    next_cursor: str | None


# Applications and keys


class ApplicationIn(Strict):
    name: Name
    retention_days: int = Field(30, ge=1, le=3650)


class ApplicationPatch(Strict):
    name: Name | None = None
    retention_days: int | None = Field(None, ge=1, le=3650)


class Application(BaseModel):
    id: uuid.UUID
    name: str
    retention_days: int
    created_at: Timestamp
    updated_at: Timestamp


class ApplicationPage(Page):
    data: list[Application]


API_KEY_TTL_MAX_S = 30 * 24 * 3600
API_KEY_EXPIRES_AT_DESCRIPTION = "past this time the key answers 401; null: it never expires"


class ApiKeyIn(Strict):
    name: Name
    # Strict: an integer, not a string or a float that reads as one.
    ttl_s: int | None = Field(
        None,
        ge=60,
        le=API_KEY_TTL_MAX_S,
        strict=True,
        description="lifetime in seconds (60..2592000, 30 days); absent or null: never expires",
    )


class ApiKey(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: Timestamp
    revoked_at: Timestamp | None
    expires_at: Timestamp | None = Field(description=API_KEY_EXPIRES_AT_DESCRIPTION)


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    name: str
    key: str = Field(description="shown only in this response; store it now")
    created_at: Timestamp
    expires_at: Timestamp | None = Field(description=API_KEY_EXPIRES_AT_DESCRIPTION)


class ApiKeyPage(Page):
    data: list[ApiKey]


# Event types


class EventTypeIn(Strict):
    name: EventTypeName
    description: str | None = Field(None, max_length=2000)
    json_schema: dict[str, Any] | None = Field(
        None, alias="schema", description="JSON Schema every payload of this type must satisfy"
    )


class EventType(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    name: str
    description: str | None
    json_schema: dict[str, Any] | None = Field(alias="schema")
    active: bool
    created_at: Timestamp
    updated_at: Timestamp


class EventTypePage(Page):
    data: list[EventType]


# Subscriptions

_OPERATIONAL_NAMES = ", ".join(f"`{name}`" for name in OPERATIONAL_EVENT_TYPES)
EVENT_TYPES_DESCRIPTION = (
    "event type names, or `*` for all of the application's own types; also any of Hookpost's"
    f" operational event types ({_OPERATIONAL_NAMES}), which `*` does not match"
)
RATE_LIMIT_DESCRIPTION = (
    "most requests per second sent to this subscription, across every deliver copy"
    " (0 < rate <= 10000; fractions allowed); null: unlimited"
)
MAX_IN_FLIGHT_DESCRIPTION = (
    "most requests to this subscription on the wire at once (1..1000); null: unlimited"
)
ORDERING_DESCRIPTION = (
    "`none`: attempts go out in any order; `per_key`: the events of one `ordering_key` are"
    " delivered one at a time, in the order they were accepted"
)

FILTER_DESCRIPTION = (
    "a SQL/JSON path predicate (PostgreSQL `jsonpath`) the event's payload must satisfy, e.g."
    ' `$.amount >= 100 && $.currency == "EUR"`; null: every payload'
)
BATCH_DESCRIPTION = (
    "send up to `max_events` due events in one POST (`type` `hookpost.batch`), waiting at most"
    " `max_wait_ms` after the first for more; null: one event per POST"
)
DEBOUNCE_DESCRIPTION = (
    "seconds (1..3600): an event arriving within this time of the previous one of the same"
    " `ordering_key` replaces it (the replaced attempt ends `superseded`); the newest is sent once"
    " this long passes with no newer one, and at most 10 x this after the first; null: off"
)
PAYLOAD_DESCRIPTION = (
    "`full`: `data` is the event's payload; `thin`: `data` is `{id, event_id, fetch_url}`, and"
    " `GET fetch_url` (no credentials) answers the full event for 24 h"
)

RateLimit = Annotated[float, Field(gt=0, le=10000, allow_inf_nan=False)]
MaxInFlight = Annotated[int, Field(ge=1, le=1000)]
Ordering = Literal["none", "per_key"]
Filter = Annotated[str, Field(min_length=1, max_length=2000)]
DebounceS = Annotated[int, Field(ge=1, le=3600)]
PayloadMode = Literal["full", "thin"]


class BatchIn(Strict):
    max_events: int = Field(ge=2, le=1000, description="most events in one POST (2..1000)")
    max_wait_ms: int = Field(
        ge=0, le=60000, description="most time to wait for more after the first (0..60000)"
    )


class Batch(BaseModel):
    max_events: int = Field(description="most events in one POST")
    max_wait_ms: int = Field(description="most time to wait for more after the first")


SubscriptionEventTypes = list[Annotated[str, Field(min_length=1, max_length=200)]]


class SubscriptionIn(Strict):
    url: str = Field(min_length=1, max_length=2048)
    event_types: SubscriptionEventTypes = Field(
        min_length=1, max_length=100, description=EVENT_TYPES_DESCRIPTION
    )
    labels: StringMap = Field(default_factory=dict)
    headers: StringMap = Field(default_factory=dict)
    description: str | None = Field(None, max_length=2000)
    enabled: bool = True
    secret: str | None = Field(None, description="`whsec_` + base64 of 24-64 bytes")
    rate_limit_per_s: RateLimit | None = Field(None, description=RATE_LIMIT_DESCRIPTION)
    max_in_flight: MaxInFlight | None = Field(None, description=MAX_IN_FLIGHT_DESCRIPTION)
    ordering: Ordering = Field("none", description=ORDERING_DESCRIPTION)
    filter: Filter | None = Field(None, description=FILTER_DESCRIPTION)
    batch: BatchIn | None = Field(None, description=BATCH_DESCRIPTION)
    debounce_s: DebounceS | None = Field(None, description=DEBOUNCE_DESCRIPTION)
    payload: PayloadMode = Field("full", description=PAYLOAD_DESCRIPTION)


class SubscriptionPatch(Strict):
    url: str | None = Field(None, min_length=1, max_length=2048)
    event_types: SubscriptionEventTypes | None = Field(
        None, min_length=1, max_length=100, description=EVENT_TYPES_DESCRIPTION
    )
    labels: StringMap | None = None
    headers: StringMap | None = None
    description: str | None = Field(None, max_length=2000)
    enabled: bool | None = None
    rate_limit_per_s: RateLimit | None = Field(
        None, description=RATE_LIMIT_DESCRIPTION + "; here null clears a limit set before"
    )
    max_in_flight: MaxInFlight | None = Field(
        None, description=MAX_IN_FLIGHT_DESCRIPTION + "; here null clears a limit set before"
    )
    ordering: Ordering | None = Field(
        None,
        description=ORDERING_DESCRIPTION + ". A change applies to the attempts not yet finished"
        " as well",
    )
    filter: Filter | None = Field(None, description=FILTER_DESCRIPTION + "; here null clears it")
    batch: BatchIn | None = Field(None, description=BATCH_DESCRIPTION + "; here null clears it")
    debounce_s: DebounceS | None = Field(
        None, description=DEBOUNCE_DESCRIPTION + "; here null clears it"
    )
    payload: PayloadMode | None = Field(None, description=PAYLOAD_DESCRIPTION)


class RotateSecretIn(Strict):
    secret: str | None = None


class RecentDeliveries(BaseModel):
    attempts: int = Field(
        description="how many of the subscription's last 100 finished attempts (succeeded,"
        " failed or gave_up) there are"
    )
    success_rate: float | None = Field(
        description="the share of those that succeeded, 0..1; null without any"
    )
    p50_ms: int | None = Field(
        description="median response time of the succeeded ones among them; null without any"
    )


class SubscriptionHealth(BaseModel):
    circuit: Literal["closed", "open", "half_open"] = Field(
        description="`closed`: sending normally; `open`: the endpoint kept failing and nothing"
        " is sent to it but a probe at `probe_at`; `half_open`: a probe is on its way"
    )
    open_since: Timestamp | None = Field(
        description="when the circuit opened; null while it is closed"
    )
    probe_at: Timestamp | None = Field(
        description="when an open circuit's next probe goes out; null otherwise"
    )
    failure_streak: int = Field(description="tries failed in a row since the last success")
    paced_per_s: float | None = Field(
        description="the rate sends are slowed to after the receiver answered 429; null: not slowed"
    )
    paused_until: Timestamp | None = Field(
        description="nothing is sent before this time (the receiver's Retry-After); null: not"
        " paused"
    )
    recent: RecentDeliveries = Field(description="the last 100 finished attempts")


class Subscription(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    labels: dict[str, str]
    headers: dict[str, str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    rate_limit_per_s: float | None = Field(description=RATE_LIMIT_DESCRIPTION)
    max_in_flight: int | None = Field(description=MAX_IN_FLIGHT_DESCRIPTION)
    ordering: Ordering = Field(description=ORDERING_DESCRIPTION)
    filter: str | None = Field(description=FILTER_DESCRIPTION)
    batch: Batch | None = Field(description=BATCH_DESCRIPTION)
    debounce_s: int | None = Field(description=DEBOUNCE_DESCRIPTION)
    payload: PayloadMode = Field(description=PAYLOAD_DESCRIPTION)
    health: SubscriptionHealth = Field(description="what delivery currently knows of the endpoint")
    created_at: Timestamp
    updated_at: Timestamp


class SubscriptionWithSecret(Subscription):
    secret: str


class SubscriptionPage(Page):
    data: list[Subscription]


class RecoverIn(Strict):
    since: InputTimestamp = Field(description="RFC 3339: attempts that ended from then on")
    until: InputTimestamp | None = Field(None, description="RFC 3339, exclusive; default now")


class Recovered(BaseModel):
    attempts_created: int = Field(
        description="new attempts, due now: one per event whose last attempt to this"
        " subscription ended failed, gave_up or expired in the window"
    )


class TestDeliveryIn(Strict):
    event_type: EventTypeName | None = Field(
        None, description="a declared event type; default `hookpost.test`"
    )
    payload: Any = Field(None, description="default: a small example payload")


class TestDelivery(BaseModel):
    attempt_id: uuid.UUID = Field(description="the test delivery's attempt, due now")


# Portal sessions


class PortalSessionIn(Strict):
    labels: StringMap = Field(
        min_length=1,
        description="the session reaches only subscriptions whose labels include all of these,"
        " and events carrying them",
    )
    ttl_s: int = Field(3600, ge=60, le=86400, description="lifetime in seconds (60..86400)")


class PortalSessionCreated(BaseModel):
    id: uuid.UUID
    token: str = Field(description="`hpp_` bearer token; shown only in this response")
    url: str = Field(description="opens the console scoped to this session; works once")
    expires_at: Timestamp
    labels: dict[str, str]


class PortalLinkIn(Strict):
    link: str = Field(min_length=1, max_length=200, description="the `#link=` of a portal url")


class PortalLinkExchanged(BaseModel):
    token: str = Field(description="`hpp_` bearer token of the console for this session")
    application_id: uuid.UUID
    labels: dict[str, str]
    expires_at: Timestamp


# Events


class EventBatchIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=500)

    def __repr__(self) -> str:
        # Powertools formats every route's arguments into a debug message, logged or not
        # (`_registered_api_adapter`): the whole batch's repr was a third of its CPU.
        return f"EventBatchIn(<{len(self.events)} events>)"


class EventAccepted(BaseModel):
    id: uuid.UUID
    event_id: str
    event_type: str
    attempts_created: int
    duplicate: bool = Field(description="true when this event_id was already accepted")


class EventBatchAccepted(BaseModel):
    data: list[EventAccepted]


class Event(BaseModel):
    id: uuid.UUID
    event_id: str
    event_type: str
    payload: Any
    labels: dict[str, str]
    occurred_at: Timestamp
    ordering_key: str = Field(description=ORDERING_KEY_DESCRIPTION)
    deliver_at: Timestamp | None = Field(description=DELIVER_AT_DESCRIPTION)
    expires_at: Timestamp | None = Field(description=EXPIRES_AT_DESCRIPTION)
    priority: Priority = Field(description=PRIORITY_DESCRIPTION)
    created_at: Timestamp
    attempts_created: int


class EventPage(Page):
    data: list[Event]


class FetchedEvent(BaseModel):
    """What a thin delivery's fetch_url answers: the full delivery's body, with the ids."""

    id: uuid.UUID = Field(description="the event's id (a full delivery's `webhook-id`)")
    event_id: str
    type: str = Field(description="the event type")
    timestamp: Timestamp = Field(description="when the event occurred")
    data: Any = Field(description="the event's payload")


class ReplayIn(Strict):
    subscription_ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=100)


class Replayed(BaseModel):
    id: uuid.UUID
    attempts_created: int
    attempt_ids: list[uuid.UUID]


# Attempts

# `expired`: not sent before its event's expires_at; `superseded`: replaced by a newer event of
# its ordering key on a debounced subscription, never sent.
AttemptStatus = Literal[
    "pending", "in_flight", "succeeded", "failed", "gave_up", "expired", "superseded"
]


class AttemptResponse(BaseModel):
    status_code: int
    headers: dict[str, str]
    body: str
    elapsed_ms: int


class Attempt(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    subscription_id: uuid.UUID
    status: AttemptStatus
    try_number: int
    trigger: Literal["event", "retry", "replay", "manual"]
    due_at: Timestamp
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    response: AttemptResponse | None
    error: str | None
    batch_id: uuid.UUID | None = Field(
        description="the batch this attempt was sent in (its `webhook-id`), on a subscription"
        " with `batch`; null when sent alone"
    )


class AttemptPage(Page):
    data: list[Attempt]


class EventDetail(Event):
    attempts: list[Attempt]


class Health(BaseModel):
    status: str
    database: str


# Stats

Granularity = Literal["hour", "day"]


class StatsAttempts(BaseModel):
    succeeded: int
    failed: int
    gave_up: int
    superseded: int = Field(
        description="replaced, not sent, by a newer event of their ordering key (`debounce_s`)"
    )
    expired: int = Field(description="not sent before their event's `expires_at`")


class StatsLatency(BaseModel):
    p50: int | None
    p95: int | None


class StatsBucket(BaseModel):
    start: Timestamp = Field(description="the bucket's first instant (UTC hour or day)")
    events: int = Field(description="events accepted in the bucket")
    attempts: StatsAttempts = Field(description="attempts that finished in the bucket")
    latency_ms: StatsLatency = Field(
        description="percentiles of the succeeded attempts' response times; null without any."
        " Exact per hour; a day's are read off a histogram, within 2%"
    )


class Stats(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    granularity: Granularity
    from_: Timestamp = Field(alias="from", description="start of the first bucket")
    to: Timestamp = Field(description="end of the range asked for")
    refreshed_at: Timestamp | None = Field(
        description="the statistics' last refresh: later events and attempts are not counted yet"
    )
    data: list[StatsBucket]
