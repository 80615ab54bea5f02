"""Stored rows as the API shows them, for the routes that answer with the same resource."""

from __future__ import annotations

from typing import Any


def attempt_view(row: dict[str, Any]) -> dict[str, Any]:
    """An attempt row as the API shows it: the receiver's answer grouped under `response`."""
    view = {k: v for k, v in row.items() if not k.startswith("response_") and k != "elapsed_ms"}
    view["response"] = (
        {
            "status_code": row["response_status"],
            "headers": row["response_headers"] or {},
            "body": row["response_body"] or "",
            "elapsed_ms": row["elapsed_ms"] or 0,
        }
        if row["response_status"] is not None
        else None
    )
    return view
