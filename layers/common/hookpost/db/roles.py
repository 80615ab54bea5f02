"""The application's database role: what every function but the migrating one connects as.

The migration step (run as the master user) makes it, or sets its password again, and grants it
what the application needs on every table, sequence and function there is, so each release's new
tables are covered before its code runs. Safe to run any number of times."""

from __future__ import annotations

import psycopg
from psycopg import sql

from hookpost.db import queries


def ensure_application_role(database_url: str, username: str, password: str) -> None:
    """Create the login role `username` with `password` (or set the password of the one there
    is) and grant it DML on the tables, USAGE on the sequences and EXECUTE on the functions of
    the database `database_url` names."""
    role, secret = sql.Identifier(username), sql.Literal(password)
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        exists = conn.execute(queries.APPLICATION_ROLE_EXISTS, {"name": username}).fetchone()
        statement = queries.APPLICATION_ROLE_PASSWORD if exists else queries.APPLICATION_ROLE_CREATE
        conn.execute(statement.format(role=role, password=secret))
        database = sql.Identifier(conn.info.dbname)
        for grant in queries.APPLICATION_ROLE_GRANTS:
            conn.execute(grant.format(role=role, database=database))
