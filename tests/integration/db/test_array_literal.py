"""Array parameters written as literals (`hookpost.db.run.array_literal`) read back as the values
they were made of, whatever characters those hold."""

from __future__ import annotations

import psycopg
import pytest

from hookpost.db.run import array_literal

AWKWARD = [
    "global",
    "ip:2001:db8::1",
    'a "quoted", {braced} value',
    "back\\slash\\",
    "",
    "NULL",
    " ",
]


@pytest.mark.parametrize(
    ("values", "cast"),
    [(AWKWARD, "text[]"), ([], "text[]"), ([1000.0, 0.001, 1e-09, 5.0], "float8[]")],
)
def test_an_array_literal_reads_back_as_its_values(database_url, values, cast):
    with psycopg.connect(database_url, prepare_threshold=None) as conn:
        (read,) = conn.execute(f"SELECT %s::{cast}", (array_literal(values),)).fetchone()
    assert read == values
