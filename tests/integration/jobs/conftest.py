"""Jobs fixtures: a direct connection for arranging rows and reading them back."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from support_jobs import connect


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with connect(database_url) as conn:
        yield conn
