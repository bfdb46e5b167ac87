"""One-click unsubscribe (RFC 8058): POST unsubscribes, GET only asks."""

from __future__ import annotations

from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent
from orchestrator.db import session_scope
from orchestrator.links import LinkClaims, make_token, unsubscribe_url
from orchestrator.models import ConsentEvent
from tests.support.web import add_customer, web_fixture  # noqa: F401

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def allows(customer_id, channel, topic):
    with session_scope() as session:
        return consent_allows(current_consent(session, [customer_id]), customer_id, channel, topic)


def consent_rows():
    with session_scope() as session:
        return list(session.exec(select(ConsentEvent)))


def test_one_click_post_unsubscribes_from_the_topic_on_the_channel(web, db_url):
    ada = add_customer()
    url = path_of(unsubscribe_url(ada.id, "marketing", "email"))
    response = web.client.post(url, data=ONE_CLICK)
    assert response.status_code == 200
    assert "no longer receive news and offers by email" in response.text
    assert not allows(ada.id, "email", "marketing")
    assert allows(ada.id, "sms", "marketing") and allows(ada.id, "email", "loyalty")
    [row] = consent_rows()
    assert row.source == "unsubscribe_link"

    assert web.client.post(url, data=ONE_CLICK).status_code == 200  # the mail provider retries
    assert len(consent_rows()) == 1


def test_get_only_shows_a_confirmation_that_links_to_the_preference_centre(web, sqlite_url):
    ada = add_customer()
    page = web.client.get(path_of(unsubscribe_url(ada.id, "marketing", "email")))
    assert page.status_code == 200
    assert "This stops news and offers by email" in page.text
    assert 'href="https://hooks.example.com/preferences/' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert consent_rows() == []  # link scanners prefetch GETs: nothing may change


def test_a_link_without_a_topic_stops_everything_on_the_channel_but_required_notices(web, sqlite_url):
    ada = add_customer()
    response = web.client.post(path_of(unsubscribe_url(ada.id, None, "email")), data=ONE_CLICK)
    assert "except required notices such as security alerts" in response.text
    for topic in ("marketing", "loyalty", "feedback", "support"):
        assert not allows(ada.id, "email", topic), topic
    assert allows(ada.id, "email", "security")
    assert allows(ada.id, "sms", "marketing")


def test_forged_expired_or_foreign_tokens_and_plain_posts_change_nothing(web, sqlite_url):
    ada = add_customer()
    good = path_of(unsubscribe_url(ada.id, "marketing", "email"))
    payload, signature = good.rsplit("/", 1)[1].split(".")
    other = make_token(LinkClaims("unsubscribe", ada.id + 1, "marketing", "email")).split(".")[0]
    expired = make_token(LinkClaims("unsubscribe", ada.id, "marketing", "email"), ttl_seconds=-1)
    preferences = make_token(LinkClaims("preferences", ada.id))
    for token in (f"{other}.{signature}", expired, preferences, "garbage"):
        response = web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
        assert response.status_code == 400, token
        assert "This link is not valid" in response.text
    assert web.client.post(good, data={"unsubscribe": "yes"}).status_code == 400
    assert consent_rows() == []


def test_without_an_https_base_url_serve_and_marketing_campaigns_say_there_is_no_one_click(
        sqlite_url, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    import flows.campaign
    from orchestrator.cli import app
    from orchestrator.settings import get_settings

    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)  # start-up only
    monkeypatch.setattr(flows.campaign, "campaign", lambda **_: {"reserved": {}, "dispatched": {}})
    runner = CliRunner()
    campaign = ["campaign", "run", "spring", "--segment", "all", "--template", "spring_sale", "--sample-data"]

    def said(args: list[str], base: str) -> bool:
        monkeypatch.setenv("ORCH_PUBLIC_BASE_URL", base)
        get_settings.cache_clear()
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return "without one-click unsubscribe" in " ".join(result.output.split())

    assert said(["serve"], "http://hooks.example.com")
    assert said(campaign, "http://hooks.example.com")
    assert not said(["serve"], "https://hooks.example.com")
    assert not said(campaign, "https://hooks.example.com")
    service = ["campaign", "run", "n", "--segment", "all", "--template", "outage_notice", "--sample-data"]
    assert not said(service, "http://hooks.example.com")  # no unsubscribe link in a service message
