"""The console in a real browser (Debian's Chromium, driven by Playwright) against the real API
on a loopback port and real deliver loops: what an operator and a customer do with it."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from aiohttp import web
from playwright.sync_api import expect

from support import ADMIN, create_tenant
from support_console import sign_in
from support_delivery import Receiver, delivering, failing_while_down, settled
from support_process import wait_for

# The README's screenshots are taken by these tests, of what they check: into docs/ when
# HOOKPOST_CONSOLE_SCREENSHOTS=1, else into a temporary folder (a test run leaves the tree as
# it was).
DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("HOOKPOST_CONSOLE_SCREENSHOTS") == "1" else tmp_path


def test_an_operator_signs_in_and_sees_applications_and_an_overview(shots, page, console_url, api):
    tenant = create_tenant(api, "Acme Billing")
    tenant.event_type()
    tenant.subscription()
    tenant.send()
    sign_in(page, console_url)
    expect(page.locator("main h1")).to_have_text("Applications")
    page.click("text=Acme Billing")
    expect(page.locator("#backlog")).to_have_text("1")
    # uPlot drew both charts on canvases
    expect(page.locator(".chart canvas")).to_have_count(2)
    page.screenshot(path=shots / "console-overview.png")
    # the token is in no URL and no cookie
    assert "test-admin-token" not in page.url
    assert page.evaluate("document.cookie") == ""


def test_a_failing_subscription_shows_its_circuit_open(
    shots, page, console_url, tenant, receiver, deliveries
):
    receiver.answer = lambda received: web.Response(status=503, text="down for maintenance")
    tenant.event_type()
    sub = tenant.subscription(url=receiver.url)
    healthy = Receiver().start()
    try:
        tenant.subscription(url=healthy.url, description="healthy one")
        sign_in(page, console_url, tenant.key, tenant.id)
        with delivering():
            for n in range(4):
                tenant.send(payload={"n": n})
            page.goto(f"{console_url}/console#/apps/{tenant.id}/subscriptions")
            row = page.locator(f"tr[data-id='{sub['id']}']")
            expect(row.locator(".health")).to_contain_text("circuit open", timeout=20_000)
            page.screenshot(path=shots / "console-endpoints.png")
            row.locator("a").click()
            expect(page.locator("main")).to_contain_text("Failures in a row")
            expect(page.locator("main .health")).to_contain_text("circuit open")
    finally:
        healthy.stop()


def test_replaying_an_event_shows_the_new_attempt_succeed(
    shots, page, console_url, tenant, receiver, deliveries
):
    down = failing_while_down(receiver)
    tenant.event_type()
    tenant.subscription(url=receiver.url, headers={"X-Team": "billing"})
    sign_in(page, console_url, tenant.key, tenant.id)
    with delivering():
        event = tenant.send(payload={"invoice": 42})
        settled(tenant, event["id"])
        page.goto(f"{console_url}/console#/apps/{tenant.id}/events/{event['id']}")
        expect(page.locator("#timeline .card")).to_have_count(1)
        expect(page.locator("#timeline .card").first).to_have_attribute("data-status", "gave_up")
        down.clear()
        page.click("#replay")
        expect(page.locator("#timeline .card")).to_have_count(2)
        expect(page.locator("#timeline .card").nth(1)).to_have_attribute(
            "data-status", "succeeded", timeout=20_000
        )
        expect(page.locator("#timeline")).to_contain_text("Response 200")
        page.locator("#timeline details").first.click()
        page.screenshot(path=shots / "console-event.png", full_page=True)
    assert len(receiver.requests) == 2


def test_rotating_a_secret_shows_the_new_one(page, console_url, tenant):
    sub = tenant.subscription()
    sign_in(page, console_url, tenant.key, tenant.id)
    page.goto(f"{console_url}/console#/apps/{tenant.id}/subscriptions/{sub['id']}")
    page.click("#rotate")
    expect(page.locator("main")).to_contain_text("Secret rotated")
    shown = page.locator("#secret").text_content()
    stored = tenant.get(f"/subscriptions/{sub['id']}").json()["secret"]
    assert shown == stored != sub["secret"]


def test_recovering_since_a_time_resends_what_failed(
    page, console_url, tenant, receiver, deliveries
):
    down = failing_while_down(receiver)
    tenant.event_type()
    sub = tenant.subscription(url=receiver.url)
    sign_in(page, console_url, tenant.key, tenant.id)
    with delivering():
        events = [tenant.send(payload={"n": n}) for n in range(3)]
        for event in events:
            settled(tenant, event["id"])
        down.clear()
        page.goto(f"{console_url}/console#/apps/{tenant.id}/subscriptions/{sub['id']}")
        since = datetime.now() - timedelta(minutes=5)  # the browser's local time
        page.fill("input[name=since]", since.strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("#recover")
        expect(page.locator("main")).to_contain_text("Recovered: 3 attempts created")
        wait_for(lambda: len(receiver.requests) == 6, timeout=20, what="three recovered deliveries")
        for event in events:
            assert settled(tenant, event["id"], count=2)[-1]["status"] == "succeeded"


def test_a_portal_link_signs_a_customer_in_to_their_own_endpoints_once(
    shots, page, console_url, api, tenant
):
    tenant.event_type()
    ours = tenant.subscription(url="http://127.0.0.1:9/acme-hook", labels={"customer": "acme"})
    tenant.subscription(url="http://127.0.0.1:9/globex-hook", labels={"customer": "globex"})
    tenant.send(labels={"customer": "acme"})
    tenant.send(labels={"customer": "globex"})
    session = tenant.post("/portal-sessions", {"labels": {"customer": "acme"}}).json()
    url = session["url"].replace("https://hookpost.test", console_url)
    page.goto(url)
    expect(page.locator("#subscriptions")).to_contain_text("acme-hook")
    expect(page.locator("#subscriptions tr[data-id]")).to_have_count(1)
    expect(page.locator("#who")).to_contain_text("customer=acme")
    # the link's secret left the address bar, and no script-readable cookie holds a token
    assert "hppl_" not in page.url and "#link" not in page.url
    assert page.evaluate("document.cookie") == ""
    page.screenshot(path=shots / "console-portal.png")
    page.click("#nav >> text=Events")
    expect(page.locator("#events tr")).to_have_count(2)  # the header and acme's one event
    expect(page.locator("#nav")).not_to_contain_text("Overview")
    # editing an id in the address bar does not reach another customer
    others = tenant.get("/subscriptions").json()["data"]
    theirs = next(s for s in others if s["id"] != ours["id"])
    page.goto(f"{console_url}/console#/apps/{tenant.id}/subscriptions/{theirs['id']}")
    expect(page.locator(".notice.error")).to_contain_text("not found")
    # the link works once
    other_tab = page.context.browser.new_context().new_page()
    other_tab.goto(url)
    expect(other_tab.locator(".notice.error")).to_contain_text("cannot be used")
    other_tab.context.close()
    # revoking the session signs the customer out
    tenant.delete(f"/portal-sessions/{session['id']}")
    page.goto(f"{console_url}/console#/apps/{tenant.id}/subscriptions")
    page.reload()
    expect(page.locator("input[name=token]")).to_be_visible()


def test_the_console_is_framed_only_by_the_origins_the_setting_allows(browser, console_url, env):
    framing = Receiver()
    framing.answer = lambda received: web.Response(
        text=f'<iframe id="portal" src="{console_url}/console"></iframe>', content_type="text/html"
    )
    framing.start()
    try:
        origin = f"http://127.0.0.1:{framing.port}"
        for allowed in (False, True):
            env(HOOKPOST_PORTAL_FRAME_ANCESTORS=origin if allowed else "")
            tab = browser.new_context().new_page()
            tab.goto(f"{origin}/embed")
            frame = tab.frame_locator("#portal")
            if allowed:
                expect(frame.locator("input[name=token]")).to_be_visible()
            else:
                tab.wait_for_timeout(500)
                assert tab.frames[1].url in (
                    "",
                    "about:blank",
                    "chrome-error://chromewebdata/",
                ) or (tab.frames[1].locator("input[name=token]").count() == 0)
            tab.context.close()
    finally:
        framing.stop()


def test_headers_cache_and_weight(console_url):
    page = httpx.get(f"{console_url}/console")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-cache"
    assets = re.findall(r'(?:src|href)="(console/assets/[^"]+)"', page.text)
    assert len(assets) == 4
    total = len(page.content)
    for asset in assets:
        response = httpx.get(f"{console_url}/{asset}")
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
        total += len(response.content)
    # the module's own imports: none (one file), so this is everything the first load fetches
    assert total < 300 * 1024, total
    assert httpx.get(f"{console_url}/console/assets/x/nothing.js").status_code == 404
    assert httpx.get(f"{console_url}/console/assets/x/index.html").status_code == 404


def test_shaping_a_subscription_through_its_page_is_kept(page, console_url, tenant):
    """Filter, batch, debounce and payload are set on the page, stored, and shown after a reload;
    emptying them clears them. Superseded attempts can be listed."""
    sub = tenant.subscription()
    sign_in(page, console_url, tenant.key, tenant.id)
    url = f"{console_url}/console#/apps/{tenant.id}/subscriptions/{sub['id']}"
    page.goto(url)
    page.fill("textarea[name=filter]", '$.amount >= 100 && $.currency == "EUR"')
    page.fill("input[name=batch_max_events]", "50")
    page.fill("input[name=batch_max_wait_ms]", "250")
    page.fill("input[name=debounce_s]", "15")
    page.select_option("select[name=payload]", "thin")
    page.click("button[type=submit]")
    expect(page.locator("main")).to_contain_text("Saved.")
    stored = tenant.get(f"/subscriptions/{sub['id']}").json()
    assert stored["filter"] == '$.amount >= 100 && $.currency == "EUR"'
    assert stored["batch"] == {"max_events": 50, "max_wait_ms": 250}
    assert (stored["debounce_s"], stored["payload"]) == (15, "thin")

    page.reload()
    expect(page.locator("textarea[name=filter]")).to_have_value(
        '$.amount >= 100 && $.currency == "EUR"'
    )
    expect(page.locator("input[name=batch_max_events]")).to_have_value("50")
    expect(page.locator("input[name=batch_max_wait_ms]")).to_have_value("250")
    expect(page.locator("input[name=debounce_s]")).to_have_value("15")
    expect(page.locator("select[name=payload]")).to_have_value("thin")

    # A bad filter is refused with the API's reason, and nothing changes.
    page.fill("textarea[name=filter]", "$.amount >>> 1")
    page.click("button[type=submit]")
    expect(page.locator(".notice.error")).to_contain_text("filter")
    assert tenant.get(f"/subscriptions/{sub['id']}").json()["filter"] == stored["filter"]

    # Emptied fields clear what was set.
    page.reload()
    page.fill("textarea[name=filter]", "")
    page.fill("input[name=batch_max_events]", "")
    page.fill("input[name=batch_max_wait_ms]", "")
    page.fill("input[name=debounce_s]", "")
    page.click("button[type=submit]")
    expect(page.locator("main")).to_contain_text("Saved.")
    cleared = tenant.get(f"/subscriptions/{sub['id']}").json()
    assert (cleared["filter"], cleared["batch"], cleared["debounce_s"]) == (None, None, None)

    page.goto(f"{console_url}/console#/apps/{tenant.id}/attempts")
    # Waited for: the hash change renders the attempts page after the goto returns.
    options = page.locator("select[name=status] option")
    for status in ("superseded", "expired"):
        expect(options.filter(has_text=re.compile(f"^{status}$"))).to_have_count(1)


def test_an_events_priority_and_its_superseded_attempts_are_shown(page, console_url, tenant):
    tenant.event_type()
    tenant.subscription(debounce_s=60)
    first = tenant.send(payload={"edit": 1}, ordering_key="order-1", priority="high")
    tenant.send(payload={"edit": 2}, ordering_key="order-1", priority="high")
    sign_in(page, console_url, tenant.key, tenant.id)
    page.goto(f"{console_url}/console#/apps/{tenant.id}/events/{first['id']}")
    expect(page.locator("#priority")).to_have_text("high")
    expect(page.locator("#timeline .card[data-status=superseded]")).to_have_count(1)
    page.goto(f"{console_url}/console#/apps/{tenant.id}/attempts?status=superseded")
    expect(page.locator("table.attempts tr[data-status=superseded]")).to_have_count(1)
    expect(page.locator("table.attempts tr[data-status=pending]")).to_have_count(0)


def console_keys(api: httpx.Client, tenant) -> list[dict]:
    listed = api.get(tenant.path("/api-keys"), headers=ADMIN).json()["data"]
    return [key for key in listed if key["name"] == "console"]


def test_an_operators_console_key_lasts_12_hours_and_is_replaced_when_it_expires(
    page, console_url, api, database_url
):
    tenant = create_tenant(api, "Keyed Shop")
    tenant.subscription(url="http://127.0.0.1:9/keyed-hook")
    sign_in(page, console_url)
    page.click("text=Keyed Shop")
    expect(page.locator("#backlog")).to_be_visible()
    [first] = console_keys(api, tenant)
    created = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert expires - created == timedelta(hours=12)

    # The key runs out: the next screen makes a new one instead of signing the operator out.
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
            (first["id"],),
        )
    page.click("#nav >> text=Endpoints")
    expect(page.locator("#subscriptions")).to_contain_text("keyed-hook")
    expect(page.locator("#who")).to_contain_text("Admin")
    expect(page.locator(".notice.error")).to_have_count(0)
    keys = console_keys(api, tenant)
    assert len(keys) == 2, keys
    [second] = [key for key in keys if key["id"] != first["id"]]
    assert second["expires_at"] is not None and second["revoked_at"] is None

    # Signing out revokes the key in use.
    page.click("#who button")
    expect(page.locator("input[name=token]")).to_be_visible()
    wait_for(
        lambda: all(k["revoked_at"] for k in console_keys(api, tenant) if k["id"] == second["id"]),
        timeout=10,
        what="the console's key revoked",
    )
