"""Re-importing a file never undoes what the customer changed since (STOP, the preference centre).

An import applies only what differs from what the import said last time; the customers it says
nothing new about are counted as ``unchanged``, apart from ``updated``.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent
from orchestrator.customer_import import import_customers
from orchestrator.db import session_scope
from orchestrator.links import preferences_url
from orchestrator.models import ContactPreference, Customer
from tests.support.signing import twilio_headers
from tests.support.web import PUBLIC_BASE_URL, TWILIO_TOKEN, web_fixture  # noqa: F401

PHONE = "+14155550100"
HEADER = "external_id,name,email,phone,sms_opt_in,marketing_opt_in,frequency,quiet_start,quiet_end\n"
ADA = f"c-ada,Ada,ada@example.com,{PHONE},yes,yes,any,,\n"
BO = "c-bo,Bo,bo@example.com,,,yes,weekly,,\n"


def _file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def _ada() -> Customer:
    with session_scope() as session:
        return session.exec(select(Customer).where(Customer.external_id == "c-ada")).one()


def _allows(channel: str, topic: str = "marketing") -> bool:
    ada = _ada()
    with session_scope() as session:
        return consent_allows(current_consent(session, [ada.id]), ada.id, channel, topic)


def _preferences() -> ContactPreference:
    with session_scope() as session:
        return session.get(ContactPreference, _ada().id)


def _stop(web) -> None:
    params = {"MessageSid": "SM" + "1" * 32, "From": PHONE, "To": "+15005550006", "Body": "STOP",
              "AccountSid": "AC" + "2" * 32}
    headers = twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio/inbound", params)
    assert web.client.post("/webhooks/twilio/inbound", data=params, headers=headers).status_code == 200


def _save_preferences(web, **choices) -> None:
    url = "/" + preferences_url(_ada().id).split("://", 1)[1].split("/", 1)[1]
    data = {"channel": ["email", "sms", "phone"], "topic": ["marketing", "loyalty", "feedback"],
            "frequency": "any", "quiet_start": "", "quiet_end": "", "preferred_channel": "", **choices}
    response = web.client.post(url, data=data, headers={"Origin": PUBLIC_BASE_URL}, follow_redirects=False)
    assert response.status_code == 303


def test_stop_then_reimporting_the_same_file_keeps_the_stop(web, db_url, tmp_path):
    path = _file(tmp_path, ADA, BO)
    assert import_customers(path).imported == 2
    assert _allows("sms")
    _stop(web)
    assert not _allows("sms")

    again = import_customers(path)

    assert not _allows("sms")  # the file still says yes, as it did before the STOP: nothing new
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 2)


def test_preference_centre_then_reimporting_the_same_file_keeps_the_choices(web, db_url, tmp_path):
    path = _file(tmp_path, ADA, BO)
    import_customers(path)
    _save_preferences(web, frequency="monthly", quiet_start="20:00", quiet_end="09:00",
                      topic=["loyalty", "feedback"])
    assert _preferences().frequency == "monthly" and not _allows("email")

    again = import_customers(path)

    assert (_preferences().frequency, _preferences().quiet_start) == ("monthly", "20:00")
    assert not _allows("email")  # marketing_opt_in=yes in the file is not news
    assert (again.updated, again.unchanged) == (0, 2)


def test_a_value_the_file_changed_is_applied_over_the_customers_choice(web, db_url, tmp_path):
    import_customers(_file(tmp_path, ADA, BO))
    _save_preferences(web, frequency="monthly")
    _stop(web)

    # the source now says something new: weekly, and an SMS opt-in it had not stated before
    changed = import_customers(_file(tmp_path, ADA.replace(",any,", ",weekly,"), BO))

    assert _preferences().frequency == "weekly"
    assert not _allows("sms")  # sms_opt_in=yes is what the file said before: the STOP holds
    assert (changed.updated, changed.unchanged) == (1, 1)
    # and saying back what it said before is news again, once
    back = import_customers(_file(tmp_path, ADA, BO))
    assert _preferences().frequency == "any" and (back.updated, back.unchanged) == (1, 1)
    assert import_customers(_file(tmp_path, ADA, BO)).unchanged == 2
