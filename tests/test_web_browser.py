"""The preference centre and unsubscribe pages in a real headless browser, JavaScript switched off."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from orchestrator.consent import consent_allows, current_consent
from orchestrator.db import session_scope
from orchestrator.links import preferences_url, unsubscribe_url
from orchestrator.models import ContactPreference
from orchestrator.web import create_app
from tests.support.web import add_customer, configure

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_or_skip() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed"
    else:
        missing = None if CHROMIUM else "no chromium on PATH (apt-get install chromium)"
    if missing is None:
        return CHROMIUM  # type: ignore[return-value]
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the browser test must run in CI: {missing}")
    pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_app(sqlite_url, monkeypatch) -> Iterator[str]:
    """The app served by uvicorn on a free port; its public URL is that address."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    configure(monkeypatch, public_base_url=base)
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the web app did not start")
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page(request):
    executable = _browser_or_skip()  # before the server starts: a skip costs nothing
    request.getfixturevalue("live_app")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(java_script_enabled=False)  # the pages must not need it
        yield context.new_page()
        browser.close()


def test_a_customer_changes_preferences_in_the_browser(page):
    from playwright.sync_api import expect

    ada = add_customer(timezone="Europe/Berlin")
    page.goto(preferences_url(ada.id))
    expect(page.get_by_role("heading", name="Your communication preferences")).to_be_visible()
    channels = page.get_by_role("group", name="Channels")
    expect(channels.get_by_role("checkbox", name="Email")).to_be_checked()
    how_often = page.get_by_role("group", name="How often")
    expect(how_often.get_by_role("radio", name="Whenever there is")).to_be_checked()

    channels.get_by_role("checkbox", name="Text messages (SMS)").uncheck()
    page.get_by_role("checkbox", name="News and offers", exact=True).uncheck()
    page.get_by_role("radio", name="At most once a week").check()
    page.get_by_label("Do not contact me from").fill("22:00")
    page.get_by_label("until").fill("07:30")
    page.get_by_role("button", name="Save my preferences").click()

    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved")
    expect(page.get_by_role("radio", name="At most once a week")).to_be_checked()
    expect(page.get_by_role("checkbox", name="News and offers", exact=True)).not_to_be_checked()
    expect(page.get_by_label("Do not contact me from")).to_have_value("22:00")
    with session_scope() as session:
        pref = session.get(ContactPreference, ada.id)
        consent = current_consent(session, [ada.id])
    assert (pref.frequency, pref.quiet_start, pref.quiet_end) == ("weekly", "22:00", "07:30")
    assert not consent_allows(consent, ada.id, "email", "marketing")
    assert not consent_allows(consent, ada.id, "sms", "loyalty")
    assert consent_allows(consent, ada.id, "email", "loyalty")


def test_unsubscribe_in_the_browser_then_review_in_the_preference_centre(page):
    from playwright.sync_api import expect

    ada = add_customer()
    page.goto(unsubscribe_url(ada.id, "marketing", "email"))
    expect(page.get_by_text("This stops news and offers by email")).to_be_visible()
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("status")).to_contain_text("no longer receive news and offers by email")

    page.get_by_role("link", name="Open your preference centre").click()
    expect(page.get_by_role("heading", name="Your communication preferences")).to_be_visible()
    # news by SMS still comes (the topic box stays ticked); email news is listed as switched off
    expect(page.get_by_role("checkbox", name="News and offers", exact=True)).to_be_checked()
    turn_on = page.get_by_role("checkbox", name="Turn news and offers by Email back on")
    expect(turn_on).not_to_be_checked()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved")
    with session_scope() as session:
        consent = current_consent(session, [ada.id])
    assert not consent_allows(consent, ada.id, "email", "marketing")
    assert consent_allows(consent, ada.id, "sms", "marketing")
