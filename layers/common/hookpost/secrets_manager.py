"""Secrets Manager values, read with powertools parameters, which caches each for a given time.

The database credentials are kept until PostgreSQL refuses them (`hookpost.db.pool` then reads
them again: rotation needs no restart); the admin token is read again at most every
HOOKPOST_ADMIN_TOKEN_MAX_AGE_S seconds (`hookpost.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from aws_lambda_powertools.utilities import parameters

# RDS Proxy listens on PostgreSQL's port; a secret may still name another (RDS secrets do).
_DEFAULT_PORT = 5432
# The roots RDS Proxy's certificates chain to (ACM's, not the RDS CA's), shipped in the layer.
PROXY_CA_BUNDLE = Path(__file__).parent / "db" / "rds-proxy-ca.pem"
# Credentials are read again when refused, not on a timer: an hour only bounds a stale cache.
_CREDENTIALS_MAX_AGE_S = 3600


def secret_string(secret_id: str, max_age_s: float | None = None) -> str:
    """The secret's value; read again once it is `max_age_s` old (powertools' default: 5 s)."""
    max_age = None if max_age_s is None else int(max_age_s)
    return cast(str, parameters.get_secret(secret_id, max_age=max_age))


def database_url(secret_id: str, host: str, dbname: str, *, refresh: bool = False) -> str:
    """The URL to reach `dbname` on `host` (the RDS Proxy endpoint) with the credentials of an
    RDS-style JSON secret (`username`, `password`, optionally `port`), over TLS verifying the
    proxy's certificate and name. `refresh` reads the secret again (it was rotated)."""
    secret = cast(
        dict[str, Any],
        parameters.get_secret(
            secret_id, transform="json", force_fetch=refresh, max_age=_CREDENTIALS_MAX_AGE_S
        ),
    )
    user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
    port = int(secret.get("port") or _DEFAULT_PORT)
    return (
        f"postgresql://{user}:{password}@{quote(host, safe='')}:{port}/{quote(dbname, safe='')}"
        f"?sslmode=verify-full&sslrootcert={quote(str(PROXY_CA_BUNDLE), safe='/')}"
    )


def credentials(secret_id: str) -> tuple[str, str]:
    """The username and password of an RDS-style JSON secret, read now."""
    secret = parameters.get_secret(secret_id, transform="json", force_fetch=True)
    secret = cast(dict[str, Any], secret)
    return secret["username"], secret["password"]
