"""Operational event types: what Hookpost itself tells subscribers about their delivery.

Names starting with `hookpost.` are reserved: clients may neither declare nor send them. A
subscription receives one of these only by naming it in its `event_types` (`*` does not match
them).
"""

from __future__ import annotations

RESERVED_PREFIX = "hookpost."

SUBSCRIPTION_DISABLED = "hookpost.subscription.disabled"
CIRCUIT_OPENED = "hookpost.circuit.opened"
ATTEMPT_GAVE_UP = "hookpost.attempt.gave_up"

# A tuple (not a set) so that messages and documents list them in a stable order; pass
# list(OPERATIONAL_EVENT_TYPES) to a query that needs a PostgreSQL array.
OPERATIONAL_EVENT_TYPES: tuple[str, ...] = (SUBSCRIPTION_DISABLED, CIRCUIT_OPENED, ATTEMPT_GAVE_UP)

# What hookpost_record raises events under, keyed as it reads them (p_circuit -> 'operational'):
# the SQL spells no name of its own.
RECORD_NAMES: dict[str, str] = {
    "reserved_prefix": RESERVED_PREFIX,
    "subscription_disabled": SUBSCRIPTION_DISABLED,
    "circuit_opened": CIRCUIT_OPENED,
    "attempt_gave_up": ATTEMPT_GAVE_UP,
}


def is_reserved(name: str) -> bool:
    """Whether `name` is in the reserved `hookpost.` namespace (operational or not)."""
    return name.startswith(RESERVED_PREFIX)
