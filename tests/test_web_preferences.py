"""The preference centre: what a customer chooses is stored, audited and decides the next message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent, record_consent
from orchestrator.db import session_scope
from orchestrator.links import preferences_url
from orchestrator.models import ConsentEvent, ContactPreference, PreferenceEvent
from orchestrator.policy import Intent, decide_chunk, load_policy, reserve_chunk
from tests.support.web import PUBLIC_BASE_URL, add_customer, web_fixture  # noqa: F401

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
SAME_SITE = {"Origin": PUBLIC_BASE_URL}


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def form(channels=("email", "sms", "phone"), topics=("marketing", "loyalty", "feedback"), frequency="any",
         quiet=("", ""), preferred="", do_not_contact=False):
    data: dict[str, list[str] | str] = {
        "channel": list(channels), "topic": list(topics), "frequency": frequency,
        "quiet_start": quiet[0], "quiet_end": quiet[1], "preferred_channel": preferred,
    }
    if do_not_contact:
        data["do_not_contact"] = "yes"
    return data


def consent(customer_id):
    with session_scope() as session:
        return current_consent(session, [customer_id])


def decide(customer_id, topic, key, at=NOW):
    with session_scope() as session:
        intent = Intent(customer_id, topic, "spring_sale", key)
        [decision, *_] = decide_chunk(session, [intent], at, load_policy())
    return decision


def test_the_page_shows_the_choices_in_force(web, sqlite_url):
    ada = add_customer()
    with session_scope() as session:
        record_consent(session, ada.id, "*", "loyalty", "opted_out", "import")
    page = web.client.get(path_of(preferences_url(ada.id)))
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "same-origin"
    assert '<input type="checkbox" name="topic" value="marketing"\n      checked>' in page.text
    assert '<input type="checkbox" name="topic" value="loyalty"\n      >' in page.text
    assert 'value="social"' not in page.text  # no X account on file: not offered
    assert "security" in page.text  # required notices are explained, not offered


def test_saving_stores_preferences_and_consent_with_an_audit_trail(web, db_url):
    ada = add_customer()
    url = path_of(preferences_url(ada.id))
    response = web.client.post(url, data=form(channels=("email",), topics=("marketing",), frequency="weekly",
                                              quiet=("21:30", "07:00"), preferred="email"),
                               headers=SAME_SITE, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == url + "?saved=1"
    assert "Your preferences are saved" in web.client.get(response.headers["location"]).text

    with session_scope() as session:
        pref = session.get(ContactPreference, ada.id)
        audit = list(session.exec(select(PreferenceEvent)))
        sources = {e.source for e in session.exec(select(ConsentEvent))}
    assert (pref.frequency, pref.quiet_start, pref.quiet_end, pref.preferred_channels) == (
        "weekly", "21:30", "07:00", ["email"])
    assert audit[0].changes["frequency"] == "weekly" and audit[0].source == "preference_centre"
    assert sources == {"preference_centre"}
    state = consent(ada.id)
    assert consent_allows(state, ada.id, "email", "marketing")
    assert not consent_allows(state, ada.id, "email", "loyalty")
    assert not consent_allows(state, ada.id, "sms", "marketing")
    # unticking SMS stops news and surveys there, not service messages
    assert consent_allows(state, ada.id, "sms", "security") and consent_allows(state, ada.id, "sms", "outage")


def test_an_earlier_unsubscribe_stays_off_until_the_customer_turns_it_back_on(web, sqlite_url):
    ada = add_customer()
    with session_scope() as session:
        record_consent(session, ada.id, "email", "marketing", "opted_out", "unsubscribe_link")
    url = path_of(preferences_url(ada.id))
    page = web.client.get(url).text
    assert "Turn news and offers by Email back on" in page
    web.client.post(url, data=form(), headers=SAME_SITE)  # saving the page as shown changes nothing
    assert not consent_allows(consent(ada.id), ada.id, "email", "marketing")
    assert consent_allows(consent(ada.id), ada.id, "sms", "marketing")

    web.client.post(url, data={**form(), "turn_back_on": "email:marketing"}, headers=SAME_SITE)
    assert consent_allows(consent(ada.id), ada.id, "email", "marketing")
    assert "back on" not in web.client.get(url).text


def test_a_preference_change_alters_the_next_campaign_decisions(web, db_url):
    ada = add_customer()
    first = reserve_chunk([Intent(ada.id, "marketing", "spring_sale", "spring-1")], now=NOW)
    assert first.count("planned") == 1
    later = NOW + timedelta(days=3)  # past the shipped 2-day marketing cap
    before = decide(ada.id, "marketing", "spring-2", later)
    assert (before.outcome, before.channel) == ("send", "email")

    url = path_of(preferences_url(ada.id))
    web.client.post(url, data=form(channels=("sms", "phone"), frequency="weekly"), headers=SAME_SITE)
    after = decide(ada.id, "marketing", "spring-2", later)
    assert after.outcome == "suppress"  # at most weekly: one marketing message 3 days ago is enough
    assert "cap:preference-weekly" in after.reason_codes

    web.client.post(url, data=form(channels=("sms", "phone")), headers=SAME_SITE)
    routed = decide(ada.id, "marketing", "spring-3", later)
    assert (routed.outcome, routed.channel) == ("send", "sms")  # email unticked: the next channel

    web.client.post(url, data=form(do_not_contact=True), headers=SAME_SITE)
    assert decide(ada.id, "marketing", "spring-4", later).outcome == "suppress"
    assert decide(ada.id, "security", "security-1", later).outcome == "send"  # required notices still go


def test_invalid_input_is_explained_and_saves_nothing(web, sqlite_url):
    ada = add_customer()
    url = path_of(preferences_url(ada.id))
    for data in (form(quiet=("21:00", "")), form(quiet=("25:00", "07:00")), form(frequency="hourly"),
                 form(channels=("email", "fax"))):
        response = web.client.post(url, data=data, headers=SAME_SITE)
        assert response.status_code == 400
        assert "Nothing was saved" in response.text
    with session_scope() as session:
        assert session.get(ContactPreference, ada.id) is None
        assert list(session.exec(select(ConsentEvent))) == []


def test_a_post_from_another_site_is_refused(web, sqlite_url):
    ada = add_customer()
    url = path_of(preferences_url(ada.id))
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}):
        response = web.client.post(url, data=form(do_not_contact=True), headers=headers)
        assert response.status_code == 403
    with session_scope() as session:
        assert session.get(ContactPreference, ada.id) is None


def test_a_forged_link_shows_a_page_not_the_preferences(web, sqlite_url):
    ada = add_customer()
    token = path_of(preferences_url(ada.id)).rsplit("/", 1)[1]
    response = web.client.get(f"/preferences/{token[:-2]}xx")
    assert response.status_code == 400
    assert "This link cannot be used" in response.text and "ada@example.com" not in response.text
