"""Settings read from the environment, once per process (a Lambda container or `make dev`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Settings:
    database_url: str
    admin_token: str
    allow_private_targets: bool
    # RDS Proxy pins a session on prepared statements, so on AWS nothing is prepared.
    prepare_statements: bool
    pool_max_size: int
    max_event_bytes: int
    max_batch_bytes: int
    max_batch_events: int
    connect_timeout_s: float

    @classmethod
    def from_env(cls) -> Settings:
        on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        return cls(
            database_url=os.environ.get("DATABASE_URL", ""),
            admin_token=os.environ.get("HOOKPOST_ADMIN_TOKEN", ""),
            allow_private_targets=_bool("HOOKPOST_ALLOW_PRIVATE_TARGETS", False),
            prepare_statements=_bool("HOOKPOST_PREPARE_STATEMENTS", not on_lambda),
            pool_max_size=_int("HOOKPOST_DB_POOL_SIZE", 2 if on_lambda else 16),
            max_event_bytes=_int("HOOKPOST_MAX_EVENT_BYTES", 256 * 1024),
            max_batch_bytes=_int("HOOKPOST_MAX_BATCH_BYTES", 6 * 1024 * 1024),
            max_batch_events=500,
            connect_timeout_s=_float("HOOKPOST_DB_CONNECT_TIMEOUT_S", 5.0),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
