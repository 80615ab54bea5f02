"""The path and query parameters several routes share, so each is declared (and documented in
the OpenAPI document) once."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

AppId = Annotated[uuid.UUID, Path(description="application id")]
SubId = Annotated[uuid.UUID, Path(description="subscription id")]
AttemptId = Annotated[uuid.UUID, Path(description="attempt id")]
EventUuid = Annotated[uuid.UUID, Path(description="the event's id")]
EventRef = Annotated[
    str, Path(min_length=1, max_length=255, description="the event's id or its event_id")
]

Limit = Annotated[int, Query(ge=1, le=200, description="page size (1..200)")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
DEFAULT_LIMIT = 50
