"""Hostile data stays text: markup, event handlers and `javascript:` URLs stored in every field
the console shows run nothing and link nowhere."""

from __future__ import annotations

from aiohttp import web
from playwright.sync_api import Page, expect

from support_console import sign_in
from support_delivery import delivering, settled

SCRIPT = "<script>window.__pwned = 'script'</script>"
IMG = '"><img src=x onerror="window.__pwned=\'img\'">'
SVG = "<svg onload=alert('svg')>"
JS_URL = "javascript:window.__pwned='link'"
HOSTILE = [SCRIPT, IMG, SVG, JS_URL]
# A payload filter that parses, matches the payload below, and carries markup in its literals.
FILTER = f'$.html == "{SCRIPT}" || $.svg == "{SVG}"'


def assert_inert(page: Page, dialogs: list[str]) -> None:
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.locator("main img, main svg, main script, main iframe").count() == 0
    assert page.locator("a[href^='javascript:' i]").count() == 0
    assert page.locator("[onerror], [onload], [onclick]").count() == 0


def test_hostile_fields_are_shown_as_text_and_run_nothing(
    page: Page, console_url, tenant, receiver, deliveries
):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    receiver.answer = lambda received: web.Response(
        status=500, text=SCRIPT + IMG + SVG + JS_URL, headers={"X-Evil": IMG + JS_URL}
    )
    tenant.event_type("order.created")
    # a javascript: target is refused outright
    refused = tenant.post("/subscriptions", {"url": JS_URL, "event_types": ["*"]})
    assert refused.status_code == 422
    sub = tenant.subscription(
        url=receiver.url + "?q=" + IMG.replace(" ", "%20"),
        description=SCRIPT + JS_URL,
        labels={"customer": "acme", "note": IMG, "link": JS_URL, "x": SCRIPT},
        headers={"X-Note": SCRIPT + IMG, "X-Link": JS_URL},
        filter=FILTER,
    )
    payload = {"html": SCRIPT, "img": IMG, "svg": SVG, "url": JS_URL, IMG: JS_URL}
    sign_in(page, console_url, tenant.key, tenant.id)
    with delivering():
        event = tenant.send(
            "order.created",
            payload,
            event_id=IMG + "1",
            labels={"customer": "acme", "note": IMG, "link": JS_URL, "x": SCRIPT},
        )
        settled(tenant, event["id"])
    base = f"{console_url}/console#/apps/{tenant.id}"
    screens = [
        (f"{base}/subscriptions", "#subscriptions"),
        (f"{base}/subscriptions/{sub['id']}", "#rotate"),
        (f"{base}/events", "#events"),
        (f"{base}/events/{event['id']}", "#timeline .card[data-status=gave_up]"),
        (f"{base}/attempts", "table.attempts"),
    ]
    for url, ready in screens:
        page.goto(url)
        page.wait_for_selector(ready)
        for details in page.locator("details").all():
            details.click()
        assert_inert(page, dialogs)
    # the filter is shown as the text it is, on the subscription's page
    page.goto(f"{base}/subscriptions/{sub['id']}")
    expect(page.locator("textarea[name=filter]")).to_have_value(FILTER)
    assert_inert(page, dialogs)
    # every hostile string is there, as text: in the payload and the receiver's answer
    page.goto(f"{base}/events/{event['id']}")
    page.wait_for_selector("#timeline .card")
    for hostile in (SCRIPT, JS_URL, SVG, IMG):
        expect(page.locator("main pre").first).to_contain_text(hostile.replace('"', '\\"'))
        expect(page.locator("pre.body")).to_contain_text(hostile)
    # and in the portal's view of the same data
    session = tenant.post("/portal-sessions", {"labels": {"customer": "acme"}}).json()
    page.goto(session["url"].replace("https://hookpost.test", console_url))
    page.wait_for_selector("#subscriptions tr[data-id]")
    page.goto(f"{base}/events/{event['id']}")
    page.wait_for_selector("#timeline .card")
    assert_inert(page, dialogs)
