def test_event_reaches_a_pending_attempt(tenant):
    tenant.event_type()
    tenant.subscription()
    accepted = tenant.send(event_id="e-1")
    assert accepted["attempts_created"] == 1
    attempts = tenant.get("/attempts").json()["data"]
    assert [a["status"] for a in attempts] == ["pending"]
