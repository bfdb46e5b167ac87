"""Hostile requests to the web app: refused, and every table exactly as it was.

Unsigned, mis-signed, tampered and replayed webhooks; oversized bodies, declared and streamed;
forged, tampered, expired, foreign-key and wrong-purpose link tokens; cross-site preference
posts; a missing or wrong incident token. The whole database is compared before and after.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlmodel import SQLModel

from orchestrator.db import session_scope
from orchestrator.links import LinkClaims, make_token
from orchestrator.models import ConsentEvent, Customer, Message
from tests.support.signing import SendGridSigner, sendgrid_event, twilio_headers
from tests.support.web import (
    INCIDENT_TOKEN,
    PUBLIC_BASE_URL,
    TWILIO_TOKEN,
    WebApp,
    add_customer,
    add_message,
    web_fixture,  # noqa: F401 - the `web` fixture
)

SENDGRID = "/webhooks/sendgrid/events"
STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
INCIDENT = {"incident_id": "inc-9", "status": "investigating", "severity": "major", "summary": "Down"}


REFUSED = {400, 401, 403, 404, 413, 422}


@dataclass
class Hostile:
    name: str
    send: Callable[[], Any]  # makes the request, returns the response


def _snapshot() -> dict[str, list[str]]:
    with session_scope() as s:
        return {t.name: sorted(repr(tuple(row)) for row in s.execute(select(t)))
                for t in SQLModel.metadata.sorted_tables}


def _form(params: dict[str, str]) -> dict[str, Any]:
    return {"content": urlencode(params), "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def _twilio(path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN, signed_url: str | None = None,
            sent: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    """A form POST signed over ``signed_url``/``params``; ``sent`` replaces the params actually sent."""
    url = signed_url or f"{PUBLIC_BASE_URL}{path}{query}"
    request = _form(sent if sent is not None else params)
    request["headers"] |= twilio_headers(token, url, params)
    return request


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // 65536):
        yield b"[" + b" " * 65534 + b"]"


@pytest.fixture
def world(sqlite_url, web: WebApp):
    ada = add_customer()
    email = add_message(ada, provider_message_id="sg-1")
    sms = add_message(ada, channel="sms", provider_message_id="SM" + "1" * 32, dedupe_key="campaign-2")
    return web, ada, email, sms


def _hostile(web: WebApp, ada: Customer, email: Message, sms: Message) -> list[Hostile]:
    client = web.client
    now = int(time.time())
    delivered = [sendgrid_event("delivered", email.id, event_id="evt-hostile")]
    body, signed = web.signer.request(delivered)
    stranger = SendGridSigner.generate()
    status = {"MessageSid": sms.provider_message_id or "", "MessageStatus": "delivered",
              "AccountSid": "AC" + "0" * 32}
    stop = {"From": ada.phone or "", "Body": "STOP", "MessageSid": "SM" + "2" * 32,
            "AccountSid": "AC" + "0" * 32}
    unsubscribe = LinkClaims("unsubscribe", ada.id, "marketing", "email")  # type: ignore[arg-type]
    preferences = LinkClaims("preferences", ada.id)  # type: ignore[arg-type]
    good = make_token(unsubscribe)
    payload, signature = good.split(".")
    other = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other["c"] = ada.id + 1  # type: ignore[operator]
    tampered = base64.urlsafe_b64encode(json.dumps(other).encode()).rstrip(b"=").decode() + "." + signature
    expired = make_token(unsubscribe, ttl_seconds=60, now=now - 3600)
    wrong_purpose = make_token(preferences)
    one_click = _form({"List-Unsubscribe": "One-Click"})
    pref_form = _form({"channel": "email", "frequency": "weekly"})
    bearer = {"Authorization": f"Bearer {INCIDENT_TOKEN}", "Content-Type": "application/json"}
    json_signed_for_the_url_only = {"Content-Type": "application/json",
                                    **twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + INBOUND, {})}

    def foreign_key_token() -> str:
        sig = base64.urlsafe_b64encode(hmac.new(b"attacker", payload.encode(), hashlib.sha256).digest())
        return payload + "." + sig.rstrip(b"=").decode()

    return [
        # SendGrid Event Webhook
        Hostile("sendgrid unsigned", lambda: client.post(SENDGRID, content=body)),
        Hostile("sendgrid signed by another key", lambda: client.post(
            SENDGRID, content=body, headers=stranger.request(delivered)[1])),
        Hostile("sendgrid tampered body", lambda: client.post(
            SENDGRID, content=body.replace(b"delivered", b"bounce"), headers=signed)),
        Hostile("sendgrid replayed an hour later", lambda: client.post(
            SENDGRID, content=body, headers=web.signer.request(delivered, timestamp=now - 3600)[1])),
        Hostile("sendgrid timestamp from the future", lambda: client.post(
            SENDGRID, content=body, headers=web.signer.request(delivered, timestamp=now + 3600)[1])),
        Hostile("sendgrid malformed timestamp", lambda: client.post(
            SENDGRID, content=body, headers={**signed, "X-Twilio-Email-Event-Webhook-Timestamp": "soon"})),
        *(Hostile(f"sendgrid timestamp {label}", lambda value=value: client.post(
            SENDGRID, content=body, headers={**signed, "X-Twilio-Email-Event-Webhook-Timestamp": value}))
          for label, value in (("of 400 digits", "9" * 400), ("of 5000 digits", "9" * 5000),
                               ("with underscores", f"{now:_}"), ("negative", "-1"))),
        Hostile("sendgrid garbage signature", lambda: client.post(
            SENDGRID, content=body,
            headers={**signed, "X-Twilio-Email-Event-Webhook-Signature": "!!é".encode("latin-1")})),
        Hostile("sendgrid signed but not a list", lambda: client.post(
            SENDGRID, content=b'{"event": "bounce"}', headers=web.signer.request(b'{"event": "bounce"}')[1])),
        Hostile("sendgrid 2 MiB body", lambda: client.post(
            SENDGRID, content=b"[" + b" " * (2 * 1024 * 1024) + b"]", headers=signed)),
        Hostile("sendgrid 2 MiB streamed", lambda: client.post(
            SENDGRID, content=_chunks(2 * 1024 * 1024), headers=signed)),
        # Twilio
        Hostile("twilio status unsigned", lambda: client.post(STATUS, **_form(status))),
        Hostile("twilio status wrong token", lambda: client.post(
            STATUS, **_twilio(STATUS, status, token="guessed-token"))),
        Hostile("twilio status signed for another URL", lambda: client.post(
            STATUS, **_twilio(STATUS, status, signed_url="https://evil.example.com/webhooks/twilio/status"))),
        Hostile("twilio status tampered", lambda: client.post(
            STATUS, **_twilio(STATUS, status, sent={**status, "MessageStatus": "undelivered"}))),
        Hostile("twilio status message id swapped", lambda: client.post(
            f"{STATUS}?message_id={email.id}", **_twilio(STATUS, status, query=f"?message_id={sms.id}"))),
        Hostile("twilio status 300 KiB form", lambda: client.post(
            STATUS, **_twilio(STATUS, {**status, "Pad": "x" * 300 * 1024}))),
        Hostile("twilio STOP reshaped into another message id", lambda: client.post(
            INBOUND, **_twilio(INBOUND, {**stop, "NumMedia": "0"},
                               sent={**stop, "MessageSid": stop["MessageSid"] + "NumMedia0"}))),
        Hostile("twilio JSON STOP without its body hash", lambda: client.post(
            INBOUND, content=json.dumps(stop), headers=json_signed_for_the_url_only)),
        Hostile("twilio forged STOP", lambda: client.post(
            INBOUND, **_twilio(INBOUND, stop, token="guessed-token"))),
        Hostile("twilio STOP with a garbage signature", lambda: client.post(
            INBOUND, content=urlencode(stop), headers={"X-Twilio-Signature": ("é" * 28).encode("latin-1"),
                                                       "Content-Type": "application/x-www-form-urlencoded"})),
        # Unsubscribe and preference links
        Hostile("unsubscribe forged token", lambda: client.post("/unsubscribe/abc.def", **one_click)),
        Hostile("unsubscribe tampered customer", lambda: client.post(f"/unsubscribe/{tampered}",
                                                                     **one_click)),
        Hostile("unsubscribe expired", lambda: client.post(f"/unsubscribe/{expired}", **one_click)),
        Hostile("unsubscribe with a preferences token", lambda: client.post(
            f"/unsubscribe/{wrong_purpose}", **one_click)),
        Hostile("unsubscribe signed with another key", lambda: client.post(
            f"/unsubscribe/{foreign_key_token()}", **one_click)),
        Hostile("unsubscribe non-ASCII token", lambda: client.post(f"/unsubscribe/{payload}.%C3%A9t%C3%A9",
                                                                  **one_click)),
        Hostile("unsubscribe page forged", lambda: client.get("/unsubscribe/not-a-token")),
        Hostile("preferences forged", lambda: client.post("/preferences/abc.def", **pref_form)),
        Hostile("preferences with an unsubscribe token", lambda: client.post(f"/preferences/{good}",
                                                                            **pref_form)),
        Hostile("preferences expired", lambda: client.get(
            f"/preferences/{make_token(preferences, ttl_seconds=1, now=now - 60)}")),
        Hostile("preferences cross-site post", lambda: client.post(
            f"/preferences/{make_token(preferences)}", content=pref_form["content"],
            headers={**pref_form["headers"], "Origin": "https://evil.example.com"})),
        # Incident trigger
        Hostile("incident without a token", lambda: client.post("/incidents", json=INCIDENT)),
        Hostile("incident wrong token", lambda: client.post(
            "/incidents", json=INCIDENT, headers={"Authorization": "Bearer guessed"})),
        Hostile("incident token in another scheme", lambda: client.post(
            "/incidents", json=INCIDENT, headers={"Authorization": f"Basic {INCIDENT_TOKEN}"})),
        Hostile("incident token with a suffix", lambda: client.post(
            "/incidents", json=INCIDENT, headers={"Authorization": f"Bearer {INCIDENT_TOKEN}x"})),
        Hostile("incident 1 MiB body", lambda: client.post(
            "/incidents", content=json.dumps({**INCIDENT, "summary": "x" * 1024 * 1024}), headers=bearer)),
        Hostile("incident unknown field", lambda: client.post(
            "/incidents", json={**INCIDENT, "segment_sql": "1=1"}, headers=bearer)),
    ]


def test_hostile_requests_are_refused_and_change_nothing(world, figure):
    web, ada, email, sms = world
    before = _snapshot()
    answers = {}
    for hostile in _hostile(web, ada, email, sms):
        response = hostile.send()
        answers[hostile.name] = response.status_code
    wrong = {name: code for name, code in answers.items() if code not in REFUSED}

    assert wrong == {}
    assert _snapshot() == before
    assert web.launcher.launched == []
    codes = Counter(answers.values())
    figure("hostile requests", f"{len(answers)} hostile requests (unsigned, tampered, replayed, oversized, "
           f"forged/expired tokens, wrong incident token) refused "
           f"({', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))}); "
           "database unchanged, no incident launched")


def test_a_replayed_genuine_webhook_has_no_second_effect(world):
    web, ada, email, sms = world
    body, headers = web.signer.request([sendgrid_event("bounce", email.id, event_id="evt-once", type="bounce",
                                                       reason="550 5.1.1 unknown user")])
    stop = {"From": ada.phone or "", "Body": "STOP", "MessageSid": "SM" + "3" * 32,
            "AccountSid": "AC" + "0" * 32}

    first = web.client.post(SENDGRID, content=body, headers=headers)
    first_stop = web.client.post(INBOUND, **_twilio(INBOUND, stop))
    assert first.status_code == 200 and first_stop.status_code == 200
    after_first = _snapshot()
    assert after_first["message"] != [] and after_first["consent_event"]  # the genuine requests counted

    for _ in range(3):
        assert web.client.post(SENDGRID, content=body, headers=headers).status_code in (200, 403)
        assert web.client.post(INBOUND, **_twilio(INBOUND, stop)).status_code in (200, 403)
    assert _snapshot() == after_first
    with session_scope() as s:
        stops = s.exec(select(ConsentEvent)).all()  # type: ignore[call-overload]
    assert len(stops) == len(after_first["consent_event"])

