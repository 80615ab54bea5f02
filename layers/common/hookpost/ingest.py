"""Accepting events: validate the whole request first, then store and fan out in one statement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from pydantic_core import to_json

from hookpost.config import RateLimit, get_settings
from hookpost.db import queries
from hookpost.db.pool import connection
from hookpost.db.run import array_literal
from hookpost.errors import Conflict, FieldError, Invalid, TooLarge
from hookpost.events import PRIORITY_RANK, EventIn
from hookpost.ids import uuid7_strings
from hookpost.operational import RESERVED_PREFIX, is_reserved
from hookpost.schemas import compile_schema, payload_errors

# Event types by (application, name), as last read. Ingest validates against them without a
# round trip; its statement stores nothing if any has changed since, and is then run again.
_declared_types: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}


@dataclass
class Checks:
    """A request's rate limits and API key, left to the ingest statement so that the request is
    one round trip. `outcome` is what that statement said ('ok', 'throttled', 'unauthorized',
    'not_found'), None while it has not run them (the caller must then check on its own)."""

    key_hash: bytes
    buckets: dict[str, RateLimit]
    outcome: str | None = None
    retry_after_s: float = 0.0
    exhausted: list[str] = field(default_factory=list)


class Refused(Exception):
    """The ingest statement refused the request on its `Checks` (their `outcome` says why);
    nothing was stored."""

    def __init__(self, checks: Checks) -> None:
        super().__init__(checks.outcome)
        self.checks = checks


def _check_params(checks: Checks | None) -> dict[str, Any]:
    if checks is None or checks.outcome is not None:
        return {"key_hash": None, "keys": "{}", "bursts": "{}", "rates": "{}"}
    limits = checks.buckets.values()
    return {
        "key_hash": checks.key_hash,
        "keys": array_literal(checks.buckets),
        "bursts": array_literal(float(limit.burst) for limit in limits),
        "rates": array_literal(float(limit.per_s) for limit in limits),
    }


def ingest(
    application_id: uuid.UUID,
    events: list[EventIn],
    *,
    batch: bool,
    checks: Checks | None = None,
) -> list[dict[str, Any]]:
    """Store events with one pending attempt per matching subscription; results in input order.

    With `checks`, the same statement first spends the request's rate-limit tokens and checks its
    key, raising Refused (nothing stored) when either refuses; `checks.outcome` then says they ran.

    Nothing is stored unless every event is valid (else Invalid, or TooLarge). An event_id seen
    before (earlier in this batch or in an earlier request) stores nothing and answers with the
    first result, marked `duplicate`. Whoever calls wakes the deliver loops when a result not
    `duplicate` created attempts.
    """

    names = list({event.event_type for event in events})
    with connection() as conn:
        declared = _cached_types(application_id, names)
        for fresh in (declared is None, True):
            if fresh:
                declared = _read_types(conn, application_id, names)
            try:
                _check(events, declared, batch)
            except Invalid:
                if fresh:
                    raise
                continue
            keys, documents = _documents(events, batch, declared)
            stored = _store(conn, application_id, documents, checks)
            if checks is not None and checks.outcome is None:
                checks.outcome = stored[0][_OUTCOME] if stored else "ok"
                if checks.outcome != "ok":
                    checks.retry_after_s = stored[0][_RETRY_AFTER_S]
                    checks.exhausted = list(stored[0][_EXHAUSTED])
                    raise Refused(checks)
            if not any(row[_STALE] for row in stored):
                break
        else:
            raise Conflict("event types changed while storing; send again")
        # What each key answers: (id, event_id, event_type, attempts_created, duplicate), the id
        # as text (queries.EVENTS_INGEST).
        results = {row[_EVENT_ID]: (*row[_ID:_STALE], False) for row in stored}
        seen_before = [key for key in dict.fromkeys(keys) if key not in results]
        if seen_before:
            with conn.cursor(row_factory=tuple_row) as cursor:
                cursor.execute(
                    queries.EVENTS_BY_KEY,
                    {"application_id": application_id, "event_ids": seen_before},
                )
                for row in cursor:
                    results[row[1]] = (*row, True)
    answers = []
    answered: set[str] = set()
    for key in keys:
        event_uuid, event_id, event_type, attempts_created, duplicate = results[key]
        answers.append(
            {
                "id": event_uuid,
                "event_id": event_id,
                "event_type": event_type,
                "attempts_created": attempts_created,
                # A key again later in the request: the first result, a duplicate of it.
                "duplicate": duplicate or key in answered,
            }
        )
        answered.add(key)
    return answers


# The SQLSTATE hookpost_ingest raises when a rate-limit bucket it takes last is empty.
THROTTLED_SQLSTATE = "HP429"


def _store(
    conn: psycopg.Connection,
    application_id: uuid.UUID,
    documents: list[str],
    checks: Checks | None,
) -> list[tuple[Any, ...]]:
    """The ingest statement's rows (as tuples: a batch's 500 dicts took a tenth of its CPU);
    Refused when its last step found a bucket empty (which undid everything: nothing stored, no
    token spent)."""
    params = {
        "application_id": application_id,
        "events": "[" + ",".join(documents) + "]",
        **_check_params(checks),
    }
    try:
        with conn.cursor(row_factory=tuple_row) as cursor:
            return cursor.execute(queries.EVENTS_INGEST, params).fetchall()
    except psycopg.Error as exc:
        if checks is None or exc.sqlstate != THROTTLED_SQLSTATE:
            raise
        seconds, *scopes = (exc.diag.message_detail or "1").split()
        checks.outcome, checks.retry_after_s, checks.exhausted = "throttled", float(seconds), scopes
        raise Refused(checks) from None


# The columns of the ingest statement's rows (queries.EVENTS_INGEST), by position.
_OUTCOME, _RETRY_AFTER_S, _EXHAUSTED, _ID, _EVENT_ID, _EVENT_TYPE, _ATTEMPTS, _STALE = range(8)


def _cached_types(application_id: uuid.UUID, names: list[str]) -> dict[str, dict] | None:
    cached = {name: _declared_types.get((application_id, name)) for name in names}
    return None if None in cached.values() else cached


def _read_types(
    conn: psycopg.Connection, application_id: uuid.UUID, names: list[str]
) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        queries.EVENT_TYPES_FOR_INGEST, {"application_id": application_id, "names": names}
    ).fetchall()
    declared = {
        row["name"]: {
            **row,
            "validator": compile_schema(row["schema"]) if row["schema"] else None,
            # As the statement compares it (the type changed since: stale).
            "type_version": row["updated_at"].isoformat(),
        }
        for row in rows
    }
    for name in names:
        if name in declared:
            _declared_types[(application_id, name)] = declared[name]
        else:
            _declared_types.pop((application_id, name), None)
    return declared


def _field(batch: bool, index: int, name: str) -> str:
    """The name of an event's field in the request, for a field error."""
    return f"events[{index}].{name}" if batch else name


def _refusal(name: str, event_type: dict[str, Any] | None) -> str | None:
    """Why events of this type cannot be sent, if they cannot."""
    if is_reserved(name):
        return (
            f"{RESERVED_PREFIX}* event types are reserved for Hookpost's operational events and"
            " cannot be sent"
        )
    if event_type is None:
        return f"unknown event type {name!r}"
    if not event_type["active"]:
        return f"event type {name!r} is inactive"
    return None


def _check(events: list[EventIn], declared: dict[str, dict[str, Any]], batch: bool) -> None:
    errors: list[FieldError] = []
    # Each event type once, not once per event: most of a batch's events share one.
    refusals = {name: _refusal(name, declared.get(name)) for name in {e.event_type for e in events}}
    now = datetime.now(UTC)
    for index, event in enumerate(events):
        refusal = refusals[event.event_type]
        if refusal is not None:
            errors.append(FieldError(_field(batch, index, "event_type"), refusal))
        else:
            validator = declared[event.event_type]["validator"]
            if validator is not None:
                for path, message in payload_errors(validator, event.payload):
                    errors.append(FieldError(_field(batch, index, "payload") + path, message))
        if event.expires_at is not None:
            field = _field(batch, index, "expires_at")
            if event.expires_at <= now:
                errors.append(FieldError(field, "must be in the future"))
            elif event.deliver_at is not None and event.expires_at <= event.deliver_at:
                errors.append(FieldError(field, "must be after deliver_at"))
    if errors:
        raise Invalid(errors)


def _documents(
    events: list[EventIn], batch: bool, declared: dict[str, dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """Each event's idempotency key, and the JSON document of each first occurrence of a key."""
    max_bytes = get_settings().max_event_bytes
    now = datetime.now(UTC).isoformat()
    keys: list[str] = []
    documents: list[str] = []
    seen: set[str] = set()
    for index, (event, event_uuid) in enumerate(
        zip(events, uuid7_strings(len(events)), strict=True)
    ):
        key = event.event_id if event.event_id is not None else event_uuid
        keys.append(key)
        if key in seen:
            continue
        seen.add(key)
        # pydantic_core's encoder: three times as fast as json's, which took a quarter of a
        # batch's CPU. NaN and Infinity come out as json.dumps writes them, for PostgreSQL to
        # refuse; the size is in UTF-8 bytes.
        document = to_json(
            {
                "ord": index,
                "id": event_uuid,
                "event_id": key,
                "event_type": event.event_type,
                "payload": event.payload,
                "labels": event.labels,
                "occurred_at": event.occurred_at.isoformat() if event.occurred_at else now,
                "type_version": declared[event.event_type]["type_version"],
                "ordering_key": event.ordering_key or event.event_type,
                "deliver_at": event.deliver_at.isoformat() if event.deliver_at else None,
                "expires_at": event.expires_at.isoformat() if event.expires_at else None,
                "priority": PRIORITY_RANK[event.priority],
            },
            inf_nan_mode="constants",
        )
        if len(document) > max_bytes:
            where = f"events[{index}]." if batch else "the event"
            raise TooLarge(f"{where} is over the {max_bytes} byte limit per event")
        documents.append(document.decode())
    return keys, documents
