"""Delivery statistics of one application, per hour or per day, from the hourly rollup the
refresh_views job maintains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import Router

from hookpost import stats
from hookpost.api import models
from hookpost.api.params import AppId
from hookpost.api.responses import json_response
from hookpost.db import queries
from hookpost.db.run import fetch_all, fetch_one
from hookpost.errors import Invalid
from hookpost.fields import InputTimestamp

router = Router()


@router.get("/applications/<app_id>/stats", tags=["stats"])
def get_stats(
    app_id: AppId,
    from_: Annotated[
        InputTimestamp | None,
        Query(
            alias="from",
            description="RFC 3339; default 24 hours (granularity=hour) or 30 days (day) before"
            " `to`. The first bucket is the one holding it.",
        ),
    ] = None,
    to: Annotated[
        InputTimestamp | None, Query(description="RFC 3339, exclusive; default now")
    ] = None,
    granularity: Annotated[models.Granularity, Query()] = "hour",
) -> Response[models.Stats]:
    to = to or datetime.now(UTC)
    try:
        from_ = from_ or to - stats.DEFAULT_SPAN[granularity]
        count = stats.bucket_count(from_, to, granularity) if from_ < to else 0
    except OverflowError:
        raise Invalid.field("to", "out of range") from None
    if from_ >= to:
        raise Invalid.field("from", "must be before `to`")
    if count > stats.MAX_BUCKETS[granularity]:
        raise Invalid.field(
            "to",
            f"the range covers more than {stats.MAX_BUCKETS[granularity]} buckets of one"
            f" {granularity}; narrow it"
            + (" or ask for granularity=day" if granularity == "hour" else ""),
        )
    starts = stats.bucket_starts(from_, to, granularity)
    params = {"application_id": app_id, "starts": starts}
    if granularity == "hour":
        buckets = [
            _bucket(row, row["p50_ms"], row["p95_ms"])
            for row in fetch_all(queries.STATS_HOURS, params)
        ]
    else:
        rows = fetch_all(
            queries.STATS_DAYS, {**params, "lo": starts[0], "hi": starts[-1] + stats.STEP["day"]}
        )
        buckets = [
            _bucket(
                row,
                stats.percentile(row["latency_ms"], row["latency_count"], 0.5),
                stats.percentile(row["latency_ms"], row["latency_count"], 0.95),
            )
            for row in rows
        ]
    refreshed = fetch_one(queries.STATS_REFRESHED_AT)
    return json_response(
        200,
        {
            "granularity": granularity,
            "from": starts[0],
            "to": to,
            "refreshed_at": refreshed["refreshed_at"] if refreshed else None,
            "data": buckets,
        },
    )


def _bucket(row: dict[str, Any], p50: int | None, p95: int | None) -> dict[str, Any]:
    return {
        "start": row["start"],
        "events": row["events"],
        "attempts": {
            k: row[k] for k in ("succeeded", "failed", "gave_up", "superseded", "expired")
        },
        "latency_ms": {"p50": p50, "p95": p95},
    }
