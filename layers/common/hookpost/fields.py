"""Validated field types shared by what clients send: the events ingest accepts and the API's
other request bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
EVENT_TYPE_NAME_RE = re.compile(EVENT_TYPE_PATTERN)


def _utc(value: datetime) -> datetime:
    # A timestamp without an offset is read as UTC rather than refused.
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        # One whose UTC form falls outside years 1..9999 would be stored but never read back.
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between the years 1 and 9999 in UTC") from None
    return value


InputTimestamp = Annotated[datetime, AfterValidator(_utc)]
EventTypeName = Annotated[str, Field(min_length=1, max_length=200, pattern=EVENT_TYPE_PATTERN)]
StringMap = dict[
    Annotated[str, Field(min_length=1, max_length=200)], Annotated[str, Field(max_length=1000)]
]


class Strict(BaseModel):
    """A body that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")
