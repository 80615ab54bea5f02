"""PostgreSQL access: the connection pool, the migrations and every query."""
