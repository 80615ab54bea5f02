"""Delivery: claim due attempts, send them signed, record outcomes and schedule retries.

`schedule` decides outcomes and retry delays (pure), `claims` holds the loop's statements,
`sender` makes the HTTP requests, `plan` decides when the loop claims and how long it waits
(pure), `recorder` writes outcomes in group commits, `loop` ties them together, and `runners`
run it for `make dev`, `hookpost deliver` and the deliver Lambda.
"""

from hookpost.delivery.claims import expire, recover_expired_leases, resync_ready

__all__ = ["expire", "recover_expired_leases", "resync_ready"]
