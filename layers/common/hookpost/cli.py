"""The `hookpost` command: `migrate`, `dev`, `api`, `deliver`, `job`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hookpost", description="Hookpost webhook delivery")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending migrations to DATABASE_URL")
    commands.add_parser("dev", help="run the whole system locally (what `make dev` runs)")
    commands.add_parser("api", help="serve the HTTP API alone, as `make dev` does")
    commands.add_parser("deliver", help="run the deliver loop alone until SIGTERM or Ctrl-C")
    job = commands.add_parser("job", help="run one scheduler job once")
    job.add_argument("name", choices=["recover_leases", "refresh_views", "cleanup"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.command in ("migrate", "deliver", "job") and not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from hookpost.db.migrate import migrate

        applied = migrate(os.environ["DATABASE_URL"])
        print("applied: " + (", ".join(applied) or "nothing pending"))
    elif args.command in ("dev", "api"):
        from hookpost.local.dev import run

        run(loops=args.command == "dev")
    elif args.command == "deliver":
        from hookpost.delivery.runners import run_until_signalled

        run_until_signalled()
    elif args.command == "job":
        from hookpost.jobs import run_once

        print(json.dumps(run_once(args.name).as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
