"""UUIDv7 ids: version 7, and strictly increasing within a process even inside one millisecond
(per_key delivery orders a batch's events by id)."""

from __future__ import annotations

import uuid

from hookpost.ids import uuid7, uuid7_strings


def test_ids_increase_strictly_within_a_millisecond():
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    # Many share a millisecond (the first 48 bits), which is what the counter is for.
    assert len({i.int >> 80 for i in ids}) < len(ids)
    assert {(i.version, i.variant) for i in ids} == {(7, "specified in RFC 4122")}


def test_a_batchs_ids_continue_the_same_sequence():
    before = uuid7()
    strings = uuid7_strings(5_000)
    after = uuid7()
    batch = [uuid.UUID(s) for s in strings]
    ids = [before, *batch, after]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert strings == [str(i) for i in batch]  # the canonical form
    assert {(i.version, i.variant) for i in batch} == {(7, "specified in RFC 4122")}
