"""A released migration never changes: released.json pins the SHA-256 of every migration file
that has been released, and every file in the folder is in it (a new migration is added there in
the commit that adds it, which releases it)."""

from __future__ import annotations

from hookpost.db.migrate import function_files, released_checksums, versioned_migrations


def test_every_released_migration_is_unchanged():
    files = {m.version: m.checksum for m in versioned_migrations()}
    released = released_checksums()

    changed = sorted(v for v in released if v in files and files[v] != released[v])
    removed = sorted(v for v in released if v not in files)
    assert not changed, f"released migrations edited: {changed}; put the change in a new one"
    assert not removed, f"released migrations removed: {removed}"


def test_every_migration_file_is_in_the_manifest():
    unreleased = sorted({m.version for m in versioned_migrations()} - set(released_checksums()))
    assert not unreleased, f"add these to migrations/released.json: {unreleased}"


def test_migrations_define_no_function_view_or_trigger_that_is_not_re_applied():
    """Functions, views and triggers belong in functions/: a versioned file may create one only
    if a function file replaces it, so what runs is always the latest definition."""
    defined = "\n".join(f.sql for f in function_files())
    for migration in versioned_migrations():
        for line in migration.sql.splitlines():
            words = line.split()
            if words[:2] in (["CREATE", "FUNCTION"], ["CREATE", "VIEW"], ["CREATE", "TRIGGER"]):
                name = words[2].split("(")[0]
                assert f"CREATE OR REPLACE {words[1]} {name}" in defined, (
                    f"{migration.version} creates {words[1].lower()} {name}, which no function "
                    "file re-applies"
                )
