"""The whole survey path in a headless browser (JavaScript off): the complaint-resolved flow emails
the survey through the fake SendGrid, the customer clicks a score in that email, then comments."""

from __future__ import annotations

import re

from sqlmodel import select

from flows.lifecycle import complaint_resolved
from orchestrator.db import session_scope
from orchestrator.models import CustomerFeedback, PhoneTask
from orchestrator.settings import get_settings
from tests.support.flow_world import add_customer, ledger, use_fake_providers
from tests.test_web_browser import live_app, page  # noqa: F401


def test_a_customer_rates_from_the_email_then_comments(page, live_app, prefect_harness,  # noqa: F811
                                                       fake_sendgrid, monkeypatch):
    from playwright.sync_api import expect

    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    monkeypatch.setenv("ORCH_PUBLIC_BASE_URL", live_app)  # links lead to the app the browser reaches
    get_settings.cache_clear()
    add_customer("ada", email="ada@example.com")
    complaint_resolved(customer="ada", complaint_id="CASE-7", survey_url="https://example.com/s/7")
    (survey,) = ledger("survey:complaint:CASE-7").values()
    (request,) = fake_sendgrid.requests_for(survey.id)
    html = fake_sendgrid.delivered(request)["html"]
    links = dict(re.findall(r'href="([^"]+/rate/[^"]+)" aria-label="(\d+) out of 5"', html)[::1])
    by_score = {int(score): url.replace("&amp;", "&") for url, score in links.items()}
    assert sorted(by_score) == [1, 2, 3, 4, 5]

    page.goto(by_score[4])
    expect(page.get_by_role("status")).to_contain_text("We recorded your answer: 4 of 5")
    scores = page.get_by_role("group", name="How satisfied are you?")
    expect(scores.get_by_role("radio", name="4")).to_be_checked()
    page.get_by_label("Anything you would like to tell us?").fill("The refund took a week, but thanks.")
    scores.get_by_role("radio", name="3").check()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status")).to_contain_text("Your answer and comment are saved")
    expect(page.get_by_label("Anything you would like to tell us?")).to_have_value(
        "The refund took a week, but thanks.")

    with session_scope() as session:
        rows = session.exec(select(CustomerFeedback).order_by(CustomerFeedback.id)).all()
        tasks = session.exec(select(PhoneTask)).all()
    assert [(r.message_id, r.score, r.body, r.channel) for r in rows] == [
        (survey.id, 4, "", "email"), (survey.id, 3, "The refund took a week, but thanks.", "email")]
    assert tasks == []  # 3 of 5 is not a low answer
