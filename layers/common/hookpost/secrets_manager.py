"""Secrets Manager values, read with powertools parameters (which caches them). `hookpost.config`
reads its settings once per process, so on Lambda each secret is fetched once per container."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

from aws_lambda_powertools.utilities import parameters

# RDS Proxy listens on PostgreSQL's port; a secret may still name another (RDS secrets do).
_DEFAULT_PORT = 5432


def secret_string(secret_id: str) -> str:
    return cast(str, parameters.get_secret(secret_id))


def database_url(secret_id: str, host: str, dbname: str) -> str:
    """The URL to reach `dbname` on `host` (the RDS Proxy endpoint) with the credentials of an
    RDS-style JSON secret (`username`, `password`, optionally `port`), TLS required."""
    secret = cast(dict[str, Any], parameters.get_secret(secret_id, transform="json"))
    user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
    port = int(secret.get("port") or _DEFAULT_PORT)
    return (
        f"postgresql://{user}:{password}@{quote(host, safe='')}:{port}/{quote(dbname, safe='')}"
        "?sslmode=require"
    )
