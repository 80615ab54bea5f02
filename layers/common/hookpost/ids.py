"""Time-ordered UUIDs (version 7, RFC 9562), made in Python where a row's id is needed up front."""

from __future__ import annotations

import os
import threading
import time
import uuid

_RAND_BITS = 74  # rand_a (12) and rand_b (62): everything below the millisecond
_last = 0
_lock = threading.Lock()


def uuid7() -> uuid.UUID:
    """Strictly increasing within a process (RFC 9562 section 6.2, method 2: a later id in the
    same millisecond is the previous one plus one), so that the events of one batch, ordered by
    id, are in the order they came: per_key delivery relies on it."""
    global _last
    candidate = (time.time_ns() // 1_000_000 & ((1 << 48) - 1)) << _RAND_BITS | int.from_bytes(
        os.urandom(10)
    ) & ((1 << _RAND_BITS) - 1)
    with _lock:
        _last = candidate if candidate > _last else _last + 1
        value = _last
    rand_a, rand_b = value >> 62 & 0xFFF, value & ((1 << 62) - 1)
    return uuid.UUID(
        int=(value >> _RAND_BITS) << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b
    )


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID a string denotes, or None when it is not one."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
