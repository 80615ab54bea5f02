"""Settings read from the environment, once per process (a Lambda container or `make dev`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

# Lambda refuses a request over 6 MiB, and API Gateway's event carries the body as a JSON string
# (every `"` and `\` escaped) besides headers and context: half of it, less room for the rest,
# so a batch at the limit always reaches the function and one over it gets the function's 413.
LAMBDA_REQUEST_LIMIT = 6 * 1024 * 1024
MAX_BATCH_BYTES = LAMBDA_REQUEST_LIMIT // 2 - 64 * 1024


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


# On AWS the credentials live in Secrets Manager: the template names the secrets (ARN or name)
# in place of DATABASE_URL and HOOKPOST_ADMIN_TOKEN. hookpost.secrets_manager is imported only
# then: boto3 is slow to load.


def database_url(*, refresh: bool = False) -> str:
    """DATABASE_URL, or on AWS the URL built from the credentials secret and the proxy's
    endpoint; `refresh` reads the secret again (PostgreSQL refused what was read: rotated)."""
    secret_id = os.environ.get("HOOKPOST_DATABASE_SECRET_ID")
    if not secret_id:
        return os.environ.get("DATABASE_URL", "")
    from hookpost import secrets_manager

    return secrets_manager.database_url(
        secret_id,
        os.environ["HOOKPOST_DATABASE_HOST"],
        os.environ["HOOKPOST_DATABASE_NAME"],
        refresh=refresh,
    )


def _secret(name: str, max_age_s: float | None = None) -> str:
    """The variable `name`, or on AWS the Secrets Manager secret `{name}_SECRET_ID` names (read
    again once `max_age_s` old)."""
    secret_id = os.environ.get(f"{name}_SECRET_ID")
    if not secret_id:
        return os.environ.get(name, "")
    from hookpost.secrets_manager import secret_string

    return secret_string(secret_id, max_age_s)


def _public_url() -> str:
    """HOOKPOST_PUBLIC_URL; on AWS the SSM parameter HOOKPOST_PUBLIC_URL_PARAMETER names (the
    template cannot give the deliver function the API's URL directly: see template.yaml)."""
    name = os.environ.get("HOOKPOST_PUBLIC_URL_PARAMETER")
    if name:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(name)).rstrip("/")
    port = os.environ.get("HOOKPOST_PORT") or 3000
    return os.environ.get("HOOKPOST_PUBLIC_URL", "").rstrip("/") or f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class CircuitSettings:
    """The circuit breaker of every subscription (HOOKPOST_CIRCUIT_*). It opens after `failures`
    failures in a row, or when at least `min_requests` sends in a `window_s` window fail at
    `failure_ratio` or more; a probe goes after `cooldown_s`, and each failed probe doubles the
    cool-down up to `max_cooldown_s`. Field names are hookpost_record's."""

    failures: int
    failure_ratio: float
    window_s: float
    min_requests: int
    cooldown_s: float
    max_cooldown_s: float

    @classmethod
    def from_env(cls) -> CircuitSettings:
        settings = cls(
            failures=_int("HOOKPOST_CIRCUIT_FAILURES", 10),
            failure_ratio=_float("HOOKPOST_CIRCUIT_FAILURE_RATIO", 0.5),
            window_s=_float("HOOKPOST_CIRCUIT_WINDOW_S", 60.0),
            min_requests=_int("HOOKPOST_CIRCUIT_MIN_REQUESTS", 50),
            cooldown_s=_float("HOOKPOST_CIRCUIT_COOLDOWN_S", 5.0),
            max_cooldown_s=_float("HOOKPOST_CIRCUIT_MAX_COOLDOWN_S", 3600.0),
        )
        if settings.failures < 1 or not 0 < settings.failure_ratio <= 1:
            raise ValueError(
                "HOOKPOST_CIRCUIT_FAILURES must be at least 1 and"
                " HOOKPOST_CIRCUIT_FAILURE_RATIO in (0, 1]"
            )
        return settings


@dataclass(frozen=True)
class DeliverySettings:
    """The deliver loop (HOOKPOST_DELIVERY_*) and the retry schedule (HOOKPOST_RETRY_*)."""

    concurrency: int
    batch_size: int
    connect_timeout_s: float
    timeout_s: float
    # A claim's lease must outlast a whole request (timeout_s) plus recording it.
    lease_s: float
    poll_s: float
    recover_s: float
    stop_grace_s: float
    retry_fast_s: float
    retry_fast_max_s: float
    retry_fast_count: int
    retry_slow_s: float
    retry_slow_count: int
    retry_jitter: float
    # The part of a loop's concurrency one subscription may hold, so that a slow receiver
    # leaves slots for everyone else's fresh events.
    subscription_share: float
    circuit: CircuitSettings
    # The API's address as receivers reach it: a thin delivery's fetch_url starts with it.
    public_url: str

    @classmethod
    def from_env(cls, on_lambda: bool) -> DeliverySettings:
        return cls(
            concurrency=_int("HOOKPOST_DELIVERY_CONCURRENCY", 100),
            batch_size=_int("HOOKPOST_DELIVERY_BATCH_SIZE", 100),
            connect_timeout_s=_float("HOOKPOST_DELIVERY_CONNECT_TIMEOUT_S", 5.0),
            timeout_s=_float("HOOKPOST_DELIVERY_TIMEOUT_S", 15.0),
            lease_s=_float("HOOKPOST_DELIVERY_LEASE_S", 60.0),
            # Locally NOTIFY wakes the loop at once and polling only finds due retries; on
            # Lambda polling is the only way to notice new attempts.
            poll_s=_float("HOOKPOST_DELIVERY_POLL_S", 0.25 if on_lambda else 1.0),
            recover_s=_float("HOOKPOST_DELIVERY_RECOVER_S", 30.0),
            stop_grace_s=_float("HOOKPOST_DELIVERY_STOP_GRACE_S", 5.0),
            retry_fast_s=_float("HOOKPOST_RETRY_FAST_S", 5.0),
            retry_fast_max_s=_float("HOOKPOST_RETRY_FAST_MAX_S", 300.0),
            retry_fast_count=_int("HOOKPOST_RETRY_FAST_COUNT", 8),
            retry_slow_s=_float("HOOKPOST_RETRY_SLOW_S", 3600.0),
            retry_slow_count=_int("HOOKPOST_RETRY_SLOW_COUNT", 24),
            retry_jitter=_float("HOOKPOST_RETRY_JITTER", 0.2),
            subscription_share=_float("HOOKPOST_DELIVERY_SUBSCRIPTION_SHARE", 0.9),
            circuit=CircuitSettings.from_env(),
            public_url=_public_url(),
        )


@dataclass(frozen=True)
class JobSettings:
    """The scheduler's jobs: how often `make dev` runs each (HOOKPOST_<JOB>_EVERY_S, 0 for
    never; on AWS the EventBridge rules decide) and how cleanup goes (HOOKPOST_CLEANUP_*)."""

    every_s: dict[str, float]
    cleanup_dry_run: bool
    cleanup_batch_size: int
    # Batches go on while there is time left in this budget (at least one runs): it keeps a run
    # inside the Lambda's timeout, and a backlog is worked off over the next runs.
    cleanup_budget_s: float

    @classmethod
    def from_env(cls) -> JobSettings:
        defaults = {"recover_leases": 30.0, "refresh_views": 60.0, "cleanup": 3600.0}
        return cls(
            every_s={
                job: _float(f"HOOKPOST_{job.upper()}_EVERY_S", every)
                for job, every in defaults.items()
            },
            cleanup_dry_run=_bool("HOOKPOST_CLEANUP_DRY_RUN", False),
            cleanup_batch_size=_int("HOOKPOST_CLEANUP_BATCH_SIZE", 1000),
            cleanup_budget_s=_float("HOOKPOST_CLEANUP_BUDGET_S", 30.0),
        )


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: up to `burst` requests at once, refilled at `per_s` a second."""

    burst: float
    per_s: float


@dataclass(frozen=True)
class LimitSettings:
    """In-function rate limits, one bucket per scope (`global`, each source `ip`, each bearer
    `key`) from HOOKPOST_LIMIT_<SCOPE>_{BURST,PER_S}; HOOKPOST_LIMITS=off turns them off."""

    enabled: bool
    scopes: dict[str, RateLimit]

    @classmethod
    def from_env(cls) -> LimitSettings:
        # A busy client (thousands of requests a second, 500 events in each batch) stays under
        # these: they stop runaway loops and floods, and one key gets at most half of the whole.
        defaults = {
            "global": (20000.0, 10000.0),
            "ip": (10000.0, 5000.0),
            "key": (10000.0, 5000.0),
        }
        scopes = {}
        for scope, (burst, per_s) in defaults.items():
            prefix = f"HOOKPOST_LIMIT_{scope.upper()}"
            limit = RateLimit(_float(f"{prefix}_BURST", burst), _float(f"{prefix}_PER_S", per_s))
            if limit.burst < 1 or limit.per_s <= 0:
                raise ValueError(f"{prefix}_BURST must be at least 1 and {prefix}_PER_S above 0")
            scopes[scope] = limit
        return cls(enabled=_bool("HOOKPOST_LIMITS", True), scopes=scopes)


@dataclass(frozen=True)
class Settings:
    database_url: str
    # A rotated admin token stops working within this many seconds: the secret is read again
    # at most this often (the authorizer's cache may still let it through API Gateway, but the
    # ingest function checks it on every request).
    admin_token_max_age_s: float
    allow_private_targets: bool
    # RDS Proxy pins a session on prepared statements, so on AWS nothing is prepared.
    prepare_statements: bool
    pool_max_size: int
    max_event_bytes: int
    max_batch_bytes: int
    connect_timeout_s: float
    # Seals subscription secrets at rest when set: any long random string.
    encryption_key: str
    # Origins that may frame the console (a customer portal in an iframe); none when empty.
    portal_frame_ancestors: tuple[str, ...]
    delivery: DeliverySettings
    jobs: JobSettings
    limits: LimitSettings

    @classmethod
    def from_env(cls) -> Settings:
        on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        return cls(
            database_url=database_url(),
            admin_token_max_age_s=_float("HOOKPOST_ADMIN_TOKEN_MAX_AGE_S", 60.0),
            allow_private_targets=_bool("HOOKPOST_ALLOW_PRIVATE_TARGETS", False),
            prepare_statements=_bool("HOOKPOST_PREPARE_STATEMENTS", not on_lambda),
            pool_max_size=_int("HOOKPOST_DB_POOL_SIZE", 2 if on_lambda else 16),
            max_event_bytes=_int("HOOKPOST_MAX_EVENT_BYTES", 256 * 1024),
            max_batch_bytes=_int("HOOKPOST_MAX_BATCH_BYTES", MAX_BATCH_BYTES),
            connect_timeout_s=_float("HOOKPOST_DB_CONNECT_TIMEOUT_S", 5.0),
            encryption_key=_secret("HOOKPOST_ENCRYPTION_KEY"),
            portal_frame_ancestors=tuple(
                os.environ.get("HOOKPOST_PORTAL_FRAME_ANCESTORS", "").split()
            ),
            delivery=DeliverySettings.from_env(on_lambda),
            jobs=JobSettings.from_env(),
            limits=LimitSettings.from_env(),
        )

    @property
    def admin_token(self) -> str:
        """The admin token: HOOKPOST_ADMIN_TOKEN, or on AWS its secret's current value."""
        return _secret("HOOKPOST_ADMIN_TOKEN", self.admin_token_max_age_s)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
