"""The `hookpost` command: `migrate`, `dev`, `api`, `deliver`, `job`, `receive`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

# What each job does, for `hookpost job --help` (their modules say it at length).
JOBS = {
    "recover_leases": "attempts whose worker died go back to pending; expired ones end expired",
    "refresh_views": "brings the hourly delivery statistics up to date",
    "cleanup": "deletes events past their application's retention, and expired secrets",
}

_SETTINGS = "Settings: the HOOKPOST_* environment variables in the README."


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="hookpost",
        description="Hookpost, multi-tenant webhook delivery on PostgreSQL: the commands that "
        "run it outside Lambda. `hookpost COMMAND --help` tells more of each.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=f"{description}\n\n{_SETTINGS}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    command(
        "migrate",
        "apply pending migrations to DATABASE_URL",
        "Apply to the database at DATABASE_URL the migrations it does not have yet, in order,\n"
        "and print their versions. With nothing pending it changes nothing: safe to repeat.",
    )
    command(
        "dev",
        "run the whole system locally (what `make dev` runs)",
        "Run Hookpost locally: PostgreSQL (embedded, data kept in .local/pgdata, unless\n"
        "DATABASE_URL is set), the migrations, the HTTP API on http://127.0.0.1:3000\n"
        "(HOOKPOST_HOST, HOOKPOST_PORT), the deliver loop and the scheduler jobs.\n"
        "Once the API answers it prints its URL, the admin token and DATABASE_URL, then one\n"
        "line per delivery outcome. Ctrl-C or SIGTERM stops all of it.",
    )
    command(
        "api",
        "serve the HTTP API alone, as `make dev` does",
        "Serve the HTTP API alone, as `hookpost dev` does but without the deliver loop and the\n"
        "jobs (run `hookpost deliver` beside it). Ctrl-C or SIGTERM stops it.",
    )
    command(
        "deliver",
        "run one deliver loop until SIGTERM or Ctrl-C",
        "Run one deliver loop against DATABASE_URL: it sends due attempts, woken by\n"
        "LISTEN/NOTIFY, and records their outcomes. Any number may run side by side.\n"
        "SIGTERM or Ctrl-C stops it cleanly: what it holds is finished or handed back.",
    )
    job = command(
        "job",
        "run one scheduler job once",
        "Run one scheduler job once against DATABASE_URL and print what it did as JSON\n"
        "(`hookpost dev` runs each on its own period; on AWS, EventBridge does). The jobs:\n"
        + "\n".join(f"  {name:<16}{does}" for name, does in JOBS.items()),
    )
    job.add_argument("name", choices=list(JOBS), metavar="NAME", help="one of the jobs above")
    receive = command(
        "receive",
        "a receiver on loopback that prints every delivery it gets",
        "Listen on 127.0.0.1 and print every webhook delivered to it: the path, the webhook-*\n"
        "headers, the body and, with --secret, whether the signature verifies. For trying\n"
        "Hookpost out: point a subscription at http://127.0.0.1:PORT/anything. Ctrl-C stops it.",
    )
    receive.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    receive.add_argument(
        "--secret", help="the subscription's whsec_ secret, to check each delivery's signature"
    )
    receive.add_argument(
        "--status", type=int, default=200, help="status to answer with (200; try 500 or 410)"
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.command in ("migrate", "deliver", "job") and not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from hookpost.db.migrate import MigrationError, migrate

        try:
            applied = migrate(os.environ["DATABASE_URL"])
        except MigrationError as exc:
            print(f"migrate: {exc}", file=sys.stderr)
            return 1
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
    elif args.command == "receive":
        from hookpost.local.receiver import serve

        server = serve(args.port, status=args.status, secret=args.secret)
        print(f"receiving on http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
