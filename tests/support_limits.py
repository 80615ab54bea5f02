"""A process hammering the rate-limit check: `python tests/support_limits.py SOURCE_IP TOKEN N`.

It prints `ready` once connected, waits for a line on stdin (so that several start together),
checks N requests from SOURCE_IP with TOKEN and prints the limits each ran into, one JSON list
per line (`[]`: allowed). Settings come from the environment, as in the function."""

from __future__ import annotations

import json
import sys

from hookpost import limits
from hookpost.db.pool import connection


def main(source_ip: str, token: str, count: int) -> None:
    event = {
        "headers": {"Authorization": f"Bearer {token}"},
        "requestContext": {"identity": {"sourceIp": source_ip}},
    }
    with connection():  # the pool is open before the start
        pass
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(count):
        throttled = limits.check(event)
        print(json.dumps(throttled.scopes if throttled else []))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
