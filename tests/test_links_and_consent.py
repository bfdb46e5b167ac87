import pytest
from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent, record_consent, update_preferences
from orchestrator.db import session_scope
from orchestrator.links import InvalidToken, LinkClaims, make_token, verify_token
from orchestrator.models import Customer, PreferenceEvent


def test_signed_link_round_trip_and_rejections():
    token = make_token(LinkClaims("unsubscribe", 42, "marketing", "email"), now=1000)
    assert verify_token(token, "unsubscribe", now=1001) == LinkClaims("unsubscribe", 42, "marketing", "email")
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, "unsubscribe", now=1000 + 61 * 24 * 3600)
    with pytest.raises(InvalidToken, match="purpose"):
        verify_token(token, "preferences", now=1001)
    payload, sig = token.split(".")
    forged = make_token(LinkClaims("unsubscribe", 43, "marketing", "email"), now=1000).split(".")[0]
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(f"{forged}.{sig}", "unsubscribe", now=1001)
    with pytest.raises(InvalidToken):
        verify_token("garbage", "unsubscribe")


def test_consent_history_is_appended_and_most_specific_record_wins(db_url):
    with session_scope() as s:
        c = Customer(external_id="c1")
        s.add(c)
        s.flush()
        assert record_consent(s, c.id, "*", "*", "opted_in", "import")
        assert record_consent(s, c.id, "sms", "marketing", "opted_out", "sms_keyword")
        assert not record_consent(s, c.id, "sms", "marketing", "opted_out", "sms_keyword")
        s.flush()
        consent = current_consent(s, [c.id])
    assert not consent_allows(consent, c.id, "sms", "marketing")
    assert consent_allows(consent, c.id, "email", "marketing")
    assert consent_allows(consent, c.id, "sms", "outage")


def test_preference_changes_leave_an_audit_trail(db_url):
    with session_scope() as s:
        c = Customer(external_id="c1")
        s.add(c)
        s.flush()
        update_preferences(s, c.id, "preference_centre", frequency="weekly", do_not_contact=False)
        with pytest.raises(ValueError, match="frequency"):
            update_preferences(s, c.id, "preference_centre", frequency="hourly")
        s.flush()
        events = s.exec(select(PreferenceEvent)).all()
    assert [e.changes for e in events] == [{"frequency": "weekly"}]


def test_a_tokens_payload_is_the_compact_json_of_its_claims():
    """Written by hand for speed: the same bytes as json.dumps, whatever the text (quotes, accents)."""
    import base64
    import json

    for claims in (LinkClaims("unsubscribe", 42, "marketing", "email", 987654321),
                   LinkClaims("preferences", 7),
                   LinkClaims("rating", 3, 'say "hi" \\ café ✓', None, 5)):
        payload = make_token(claims, now=1000).split(".")[0]
        body = {"p": claims.purpose, "c": claims.customer_id, "t": claims.topic, "ch": claims.channel,
                "exp": 1000 + 60 * 24 * 3600}
        if claims.message_id is not None:
            body["m"] = claims.message_id
        expected = json.dumps(body, separators=(",", ":")).encode()
        assert base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)) == expected
        assert verify_token(make_token(claims, now=1000), claims.purpose, now=1001) == claims
