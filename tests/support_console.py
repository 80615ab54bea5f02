"""Browser test support: signing in to the console as a person would."""

from __future__ import annotations

from playwright.sync_api import Page

from support import ADMIN_TOKEN


def sign_in(page: Page, base_url: str, token: str = ADMIN_TOKEN, app_id: str = "") -> None:
    """Through the sign-in form: a token, and the application id that goes with a key."""
    page.goto(f"{base_url}/console")
    page.fill("input[name=token]", token)
    if app_id:
        page.fill("input[name=application]", app_id)
    page.click("button[type=submit]")
    page.wait_for_selector("#who button")
