"""The `hookpost` command: `migrate`, `dev`."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hookpost", description="Hookpost webhook delivery")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending migrations to DATABASE_URL")
    commands.add_parser("dev", help="run the whole system locally (what `make dev` runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.command == "migrate":
        from hookpost.db.migrate import migrate

        url = os.environ.get("DATABASE_URL")
        if not url:
            print("DATABASE_URL is not set", file=sys.stderr)
            return 2
        applied = migrate(url)
        print("applied: " + (", ".join(applied) or "nothing pending"))
    elif args.command == "dev":
        from hookpost.local.dev import run

        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
