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
    return uuid.UUID(int=_next(1)[0])


def uuid7_strings(n: int) -> list[str]:
    """n ids as uuid7() makes them, in its one increasing sequence, as strings: a batch's ids
    without a UUID object each (making those took a sixth of a batch's CPU)."""
    strings = []
    for value in _next(n):
        h = f"{value:032x}"
        strings.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return strings


def _next(n: int) -> list[int]:
    """The next n ids of the sequence, as integers: a random candidate each, in this
    millisecond, unless the previous id is already past it."""
    global _last
    millisecond = (time.time_ns() // 1_000_000 & ((1 << 48) - 1)) << _RAND_BITS
    randoms = os.urandom(10 * n)
    mask = (1 << _RAND_BITS) - 1
    values = []
    with _lock:
        last = _last
        for i in range(0, 10 * n, 10):
            candidate = millisecond | int.from_bytes(randoms[i : i + 10]) & mask
            last = candidate if candidate > last else last + 1
            values.append(
                (last >> _RAND_BITS) << 80
                | 0x7 << 76
                | (last >> 62 & 0xFFF) << 64
                | 0x2 << 62
                | last & ((1 << 62) - 1)
            )
        _last = last
    return values


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID a string denotes, or None when it is not one."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
