"""No key, token or secret ever reaches a log line, whatever happens on the way."""

from __future__ import annotations

import logging

from aiohttp import web

from support import ADMIN, ADMIN_TOKEN
from support_delivery import delivering
from support_process import wait_for


def test_no_credential_appears_in_any_log_line(
    api, tenant, subscribed, receiver, no_retries, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    key = api.post(tenant.path("/api-keys"), headers=ADMIN, json={"name": "logged"}).json()["key"]
    rotated = tenant.post(f"/subscriptions/{subscribed['id']}/rotate-secret").json()["secret"]
    # failures and errors are where secrets tend to leak: a refused key, a bad request, a
    # receiver error, a revoked key
    api.get(tenant.path("/events"), headers={"Authorization": f"Bearer {key}x"})
    api.post(tenant.path("/events"), headers={"Authorization": f"Bearer {key}"}, json={"x": 1})
    receiver.answer = lambda received: web.Response(status=500, text="boom")
    with delivering():
        sent = tenant.send()
        wait_for(lambda: receiver.to(sent["id"]), timeout=10, what="the delivery")
        wait_for(
            lambda: tenant.get("/attempts", params={"status": "gave_up"}).json()["data"],
            timeout=10,
            what="the outcome",
        )
    keys = api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]
    api.delete(tenant.path(f"/api-keys/{keys[0]['id']}"), headers=ADMIN)
    api.get(tenant.path("/events"), headers={"Authorization": f"Bearer {key}"})

    captured = capsys.readouterr()
    logged = "\n".join([captured.out, captured.err, caplog.text])
    assert logged, "the flow above logs something"
    for credential in (key, tenant.key, ADMIN_TOKEN, subscribed["secret"], rotated):
        assert credential not in logged
        assert credential.removeprefix("whsec_") not in logged
