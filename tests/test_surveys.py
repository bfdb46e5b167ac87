"""Survey answers: one-click rating links, SMS replies, and service recovery after a low answer."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlmodel import select

from orchestrator.db import session_scope
from orchestrator.links import LinkClaims, make_token
from orchestrator.models import CustomerFeedback, Message, PhoneTask, utcnow
from orchestrator.surveys import RECOVERY_REASON, rating_links, rating_token
from tests.support.web import add_customer, web_fixture  # noqa: F401
from tests.test_web_twilio import PHONE, inbound

PUBLIC = "https://hooks.example.com"


def add_survey(customer, channel: str = "email", scale: str = "csat",
               sent_ago: timedelta = timedelta(hours=1), key: str = "survey:complaint:CASE-1") -> Message:
    with session_scope() as session:
        message = Message(dedupe_key=key, customer_id=customer.id, topic="feedback", channel=channel,
                          template="feedback_survey", status="delivered", sent_at=utcnow() - sent_ago,
                          data={"survey_subject": "your complaint", "survey_scale": scale})
        session.add(message)
    return message


def answers() -> list[tuple[int | None, str, int | None]]:
    with session_scope() as session:
        rows = session.exec(select(CustomerFeedback).order_by(CustomerFeedback.id)).all()
    return [(r.message_id, r.body, r.score) for r in rows]


def recovery_tasks() -> list[PhoneTask]:
    with session_scope() as session:
        return list(session.exec(select(PhoneTask).where(PhoneTask.reason == RECOVERY_REASON)))


def path_of(url: str) -> str:
    return url.removeprefix(PUBLIC)


def test_a_rating_link_records_at_once_and_a_comment_keeps_the_history(web, db_url):
    ada = add_customer()
    survey = add_survey(ada)
    links = rating_links(ada.id, survey.id, "csat")
    assert sorted(links) == [f"rate_{n}" for n in range(1, 6)]

    assert web.client.head(path_of(links["rate_4"])).status_code == 405  # a link checker's HEAD: no answer
    assert answers() == []
    page = web.client.get(path_of(links["rate_4"]))
    assert page.status_code == 200 and "4 of 5" in page.text and 'role="status"' in page.text
    assert "<script" not in page.text and page.headers["Referrer-Policy"] == "same-origin"
    assert answers() == [(survey.id, "", 4)]
    assert web.client.get(path_of(links["rate_4"])).status_code == 200  # the same click again
    assert answers() == [(survey.id, "", 4)]  # ... records nothing new

    token_path = path_of(links["rate_4"]).rsplit("/", 1)[0]
    posted = web.client.post(token_path, data={"score": "5", "comment": "Quick and kind."},
                             headers={"Origin": PUBLIC}, follow_redirects=False)
    assert posted.status_code == 303
    shown = web.client.get(posted.headers["location"])
    assert "saved" in shown.text and "Quick and kind." in shown.text
    assert answers() == [(survey.id, "", 4), (survey.id, "Quick and kind.", 5)]  # history; latest counts
    assert recovery_tasks() == []

    cross_site = web.client.post(token_path, data={"score": "1"}, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403 and len(answers()) == 2


def test_bad_rating_links_are_refused_with_nothing_recorded(web, sqlite_url):
    ada = add_customer()
    bo = add_customer(external_id="c-bo", email="bo@example.com", phone="+14155550111")
    survey = add_survey(ada)
    other = add_message_of_another_kind(ada)
    good = rating_token(ada.id, survey.id)
    payload, signature = good.split(".")
    expired = make_token(LinkClaims("rating", ada.id, message_id=survey.id), now=time.time() - 31 * 86400,
                         ttl_seconds=30 * 86400)
    refused = {
        "forged": make_token_with_key(ada.id, survey.id),
        "altered": payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature,
        "expired": expired,
        "cross-customer": rating_token(bo.id, survey.id),
        "another purpose": make_token(LinkClaims("preferences", ada.id, message_id=survey.id)),
        "not a survey": rating_token(ada.id, other.id),
    }
    for name, token in refused.items():
        answer = web.client.get(f"/rate/{quote(token)}/4")
        assert answer.status_code == 400, name
        assert "cannot be used" in answer.text, name
    for score in ("6", "0", "-1", "four", "100"):
        assert web.client.get(f"/rate/{quote(good)}/{score}").status_code in (400, 404), score
    assert web.client.post(f"/rate/{quote(good)}", data={"score": "9"}).status_code == 400
    assert answers() == [] and recovery_tasks() == []


def add_message_of_another_kind(customer) -> Message:
    with session_scope() as session:
        message = Message(dedupe_key="campaign:spring", customer_id=customer.id, topic="marketing",
                          channel="email", template="spring_sale", status="sent", sent_at=utcnow())
        session.add(message)
    return message


def make_token_with_key(customer_id: int, message_id: int) -> str:
    """A token signed with a key that is not ours."""
    from orchestrator.settings import get_settings

    settings = get_settings()
    original = settings.secret_key
    try:
        object.__setattr__(settings, "secret_key", type(original)("someone-elses-key"))
        return rating_token(customer_id, message_id)
    finally:
        object.__setattr__(settings, "secret_key", original)


def test_nps_surveys_offer_0_to_10():
    assert sorted(rating_links(1, 2, "nps"), key=lambda k: int(k.split("_")[1])) == [
        f"rate_{n}" for n in range(11)]
    with pytest.raises(ValueError, match="unknown survey scale"):
        rating_links(1, 2, "stars")


def test_a_low_answer_opens_exactly_one_recovery_task_with_the_recent_messages_and_the_comment(web, db_url):
    ada = add_customer()
    add_message_of_another_kind(ada)
    survey = add_survey(ada)
    links = rating_links(ada.id, survey.id, "csat")
    web.client.get(path_of(links["rate_2"]))
    web.client.get(path_of(links["rate_2"]))  # replayed
    web.client.get(path_of(links["rate_1"]))  # changed: still the same open task
    token_path = path_of(links["rate_1"]).rsplit("/", 1)[0]
    web.client.post(token_path, data={"score": "1", "comment": "Nobody called back."},
                    headers={"Origin": PUBLIC})

    (task,) = recovery_tasks()
    assert task.customer_id == ada.id and task.topic == "support" and task.status == "open"
    assert "CSAT 2 of 5" in task.script and "spring_sale (marketing, email" in task.script
    assert "Nobody called back." in task.script
    assert timedelta(hours=3) < task.due_at - task.created_at <= timedelta(hours=4)  # the support SLA
    assert [score for _, _, score in answers()] == [2, 1, 1]

    # Once the call is done, a new low answer to another survey opens a new task.
    with session_scope() as session:
        session.get(PhoneTask, task.id).status = "done"
    second = add_survey(ada, scale="nps", key="survey:incident:INC-1")
    web.client.get(path_of(rating_links(ada.id, second.id, "nps")["rate_6"]))
    assert len(recovery_tasks()) == 2


def test_an_sms_number_reply_to_a_recent_survey_is_its_score(web, db_url):
    ada = add_customer()
    survey = add_survey(ada, channel="sms")
    assert inbound(web, " 4 ", sid="SMr1").status_code == 200
    assert answers() == [(survey.id, "", 4)]
    inbound(web, "1", sid="SMr2")  # a change of mind, low: a call
    assert answers()[-1] == (survey.id, "", 1) and len(recovery_tasks()) == 1
    inbound(web, "1", sid="SMr2")  # Twilio retried the same message: nothing new
    assert len(answers()) == 2

    inbound(web, "9", sid="SMr3")  # off the 1-5 scale: ordinary feedback, as any reply
    inbound(web, "Thanks, all good now", sid="SMr4")
    assert answers()[-2:] == [(None, "9", None), (None, "Thanks, all good now", None)]
    inbound(web, "STOP", sid="SMr5")  # keywords keep their meaning
    assert len(answers()) == 4


def test_a_number_long_after_the_survey_is_ordinary_feedback(web, sqlite_url):
    ada = add_customer()
    add_survey(ada, channel="sms", sent_ago=timedelta(days=8))
    inbound(web, "5", sid="SMold")
    assert answers() == [(None, "5", None)]
    assert PHONE == ada.phone


@pytest.mark.postgres
def test_concurrent_low_answers_open_one_recovery_task(pg_url):
    """Two low answers of one customer to two surveys at the same moment: one call, not two."""
    import threading

    from orchestrator.surveys import record_answer

    ada = add_customer()
    surveys = [add_survey(ada, key=f"survey:complaint:CASE-{n}") for n in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def answer(survey: Message) -> None:
        try:
            barrier.wait(5)
            with session_scope() as session:
                record_answer(session, session.get(Message, survey.id), 1, channel="email", source="test")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(s,)) for s in surveys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(answers()) == 2 and len(recovery_tasks()) == 1
