"""Reports counted from a ledger written by hand: every stage, rate, breakdown, flag and time."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.models import (
    Campaign,
    ConsentEvent,
    Customer,
    CustomerFeedback,
    DeliveryEvent,
    Incident,
    Message,
    PhoneTask,
    utcnow,
)
from orchestrator.reports import ReportSlice, UnknownSlice, build_report, parse_period

NOW = utcnow()


def seed() -> dict[str, int]:
    """A campaign of 8 messages and an incident of 2, with a known history."""
    with session_scope() as s:
        customers = [Customer(external_id=f"c{i}", email=f"c{i}@example.com", phone=f"+1415555010{i}")
                     for i in range(8)]
        s.add_all(customers)
        spring = Campaign(name="spring", segment="newsletter", topic="marketing", template="spring_sale")
        outage = Incident(incident_key="INC-7", segment="eu")
        s.add_all([spring, outage])
        s.flush()

        start = NOW - timedelta(hours=2)

        def message(i: int, status: str, channel: str = "email", sent: int | None = 0,
                    delivered: int | None = None, **fields) -> Message:
            row = Message(dedupe_key=f"k{i}-{channel}-{fields.get('topic', 'm')}",
                          customer_id=customers[i].id, topic=fields.pop("topic", "marketing"),
                          channel=channel,
                          status=status, template=fields.pop("template", "spring_sale"),
                          tone=fields.pop("tone", "appreciative"), locale=fields.pop("locale", "en"),
                          created_at=start,
                          sent_at=start + timedelta(seconds=sent) if sent is not None else None,
                          delivered_at=None if delivered is None else start + timedelta(seconds=delivered),
                          **fields)
            s.add(row)
            return row

        camp = {"campaign_id": spring.id}
        rows = {
            "opened": message(0, "delivered", delivered=2, **camp),
            "machine": message(1, "delivered", delivered=4, **camp),
            "clicked": message(2, "delivered", delivered=6, tone="empathetic", **camp),
            "bounced": message(3, "bounced", **camp),
            "dropped": message(4, "failed", **camp),
            "sms": message(5, "delivered", channel="sms", delivered=10, locale="es", **camp),
            "deferred": message(6, "deferred", channel="sms", sent=None,
                                reason_codes=["consent:opted_out", "fallback:email->sms", "route:sms",
                                              "quiet_hours:sms", "send_time:10:00"], **camp),
            "suppressed": message(7, "suppressed", sent=None,
                                  reason_codes=["preference:email", "do_not_contact"], **camp),
            "notice": message(0, "delivered", delivered=1, topic="outage", template="outage_notice",
                              tone="urgent", incident_id=outage.id),
            "call": message(1, "sent", channel="phone", topic="outage", template="outage_notice",
                            tone="urgent", incident_id=outage.id),
        }
        s.flush()
        ids = {name: row.id for name, row in rows.items()}

        def event(name: str, kind: str, n: int = 1) -> None:
            for k in range(n):
                s.add(DeliveryEvent(message_id=ids[name], provider="sendgrid", event_type=kind, kind=kind,
                                    provider_event_id=f"{name}-{kind}-{k}"))

        event("opened", "open", 3)  # three opens, one unique
        event("opened", "unsubscribe")
        event("machine", "machine_open", 2)
        event("clicked", "machine_open")
        event("clicked", "open")
        event("clicked", "click", 2)
        event("clicked", "spam_report")
        event("bounced", "bounce")
        event("dropped", "dropped")
        event("notice", "open")
        # A reply by SMS an hour after the SMS, and one by email eight days after: too late to count.
        s.add(CustomerFeedback(customer_id=customers[5].id, channel="sms", body="Thanks!",
                               created_at=NOW - timedelta(hours=1)))
        s.add(CustomerFeedback(customer_id=customers[2].id, channel="email", body="late",
                               created_at=NOW + timedelta(days=8)))
        # STOP to the SMS: an unsubscribe from it; customer 0's STOP answers no text of theirs.
        for i in (5, 0):
            s.add(ConsentEvent(customer_id=customers[i].id, channel="sms", topic="*", state="opted_out",
                               source="sms_keyword", created_at=NOW - timedelta(minutes=30)))
        s.add(PhoneTask(customer_id=customers[1].id, message_id=ids["call"], topic="outage",
                        due_at=NOW + timedelta(hours=1), status="done", updated_at=NOW))
        return ids


def test_a_campaign_report_counts_every_stage_once_per_message(db_url):
    seed()
    with session_scope() as s:
        report = build_report(s, ReportSlice(campaign="spring"), now=NOW)
    funnel = report["funnel"]
    assert {k: v for k, v in funnel.items() if not k.endswith("_by_reason")} == {
        "audience": 8, "messages": 8, "planned": 7, "pending": 0, "deferred": 1, "suppressed": 1,
        "cancelled": 0, "sent": 6, "delivered": 4, "opened": 2, "machine_opened": 2, "clicked": 1,
        "bounced": 1, "dropped": 1, "spam_reports": 1, "unsubscribed": 2, "failed": 1, "reconcile": 0,
        "replies": 1, "phone_tasks_opened": 0, "phone_tasks_done_within_sla": 0}
    # Only the codes that say why: not the route it would take, nor why it left email for SMS.
    assert funnel["deferred_by_reason"] == {"quiet_hours:sms": 1, "send_time:10:00": 1}
    assert funnel["suppressed_by_reason"] == {"do_not_contact": 1}
    found = {name: (r["value"], r["numerator"], r["denominator"]) for name, r in report["rates"].items()}
    assert found == {
        "delivery_rate": (round(4 / 6, 6), 4, 6), "open_rate": (0.5, 2, 4), "click_rate": (0.25, 1, 4),
        "bounce_rate": (round(1 / 6, 6), 1, 6), "spam_report_rate": (0.25, 1, 4),
        "unsubscribe_rate": (0.5, 2, 4), "reply_rate": (0.25, 1, 4)}
    assert "machine opens left out" in report["rates"]["open_rate"]["of"]
    assert any("sg_machine_open" in note for note in report["notes"])
    # Delivered after 2, 4, 6 and 10 seconds: median (nearest rank) 4 s, 95th percentile 10 s.
    assert report["timing"]["send_to_delivered"] == {
        "measured": 4, "median_seconds": 4.0, "p95_seconds": 10.0}

    by = {dim: {r["value"]: r["counts"]["messages"] for r in rows}
          for dim, rows in report["breakdown"].items()}
    assert by["channel"] == {"email": 6, "sms": 2}
    assert by["tone"] == {"appreciative": 7, "empathetic": 1}
    assert by["locale"] == {"en": 7, "es": 1}
    assert by["segment"] == {"newsletter": 8} and by["template"] == {"spring_sale": 8}
    email = next(r for r in report["breakdown"]["channel"] if r["value"] == "email")
    counts, rates = email["counts"], email["rates"]
    assert (counts["delivered"], counts["opened"], rates["open_rate"]["value"]) == (
        3, 2, round(2 / 3, 6))
    assert report["variants"]["rows"] == [] and "no variant" in report["variants"]["note"]


def test_an_incident_report_covers_its_updates_and_phone_tasks(db_url):
    seed()
    with session_scope() as s:
        report = build_report(s, ReportSlice(incident="INC-7"), now=NOW)
        topic = build_report(s, ReportSlice(topic="outage"), now=NOW)
        window = build_report(s, ReportSlice(since=utcnow() + timedelta(minutes=1)), now=NOW)
    funnel = report["funnel"]
    assert (funnel["messages"], funnel["sent"], funnel["delivered"], funnel["opened"]) == (2, 2, 1, 1)
    assert (funnel["phone_tasks_opened"], funnel["phone_tasks_done_within_sla"]) == (1, 1)
    assert {r["value"] for r in report["breakdown"]["segment"]} == {"eu"}
    assert topic["funnel"]["messages"] == 2
    assert window["funnel"]["messages"] == 0 and window["rates"]["open_rate"]["value"] is None


def test_unknown_campaigns_and_incidents_are_errors_and_periods_are_checked(sqlite_url):
    with session_scope() as s, pytest.raises(UnknownSlice, match="no campaign named 'nope'"):
        build_report(s, ReportSlice(campaign="nope"))
    assert parse_period("30d") == timedelta(days=30) and parse_period("12h") == timedelta(hours=12)
    for bad in ("30", "0d", "-3d", "thirty days"):
        with pytest.raises(ValueError, match="not a period"):
            parse_period(bad)


def test_health_flags_are_raised_at_the_published_thresholds(db_url):
    """Email: 1 spam report in 333 delivered is 0.30% (raised); SMS: 1 bounce in 51 sent is 1.96%."""
    with session_scope() as s:
        customer = Customer(external_id="c", email="c@example.com")
        s.add(customer)
        s.flush()
        rows = [Message(dedupe_key=f"e{i}", customer_id=customer.id, topic="marketing", channel="email",
                        template="t", status="delivered", sent_at=NOW - timedelta(days=1),
                        delivered_at=NOW - timedelta(days=1)) for i in range(333)]
        rows += [Message(dedupe_key=f"s{i}", customer_id=customer.id, topic="marketing", channel="sms",
                         template="t", status="bounced" if i == 0 else "sent",
                         sent_at=NOW - timedelta(days=2)) for i in range(51)]
        # Older than 30 days: not counted.
        rows += [Message(dedupe_key=f"old{i}", customer_id=customer.id, topic="marketing", channel="sms",
                         template="t", status="bounced", sent_at=NOW - timedelta(days=31)) for i in range(5)]
        s.add_all(rows)
        s.flush()
        s.add(DeliveryEvent(message_id=rows[0].id, provider="sendgrid", provider_event_id="spam",
                            event_type="spamreport", kind="spam_report"))
    with session_scope() as s:
        flags = build_report(s, ReportSlice(), now=NOW)["flags"]
    found = {(f["channel"], f["rule"]): (f["numerator"], f["denominator"], f["raised"]) for f in flags}
    assert found == {("email", "spam_report_rate"): (1, 333, True), ("email", "bounce_rate"): (0, 333, False),
                     ("sms", "spam_report_rate"): (0, 0, False), ("sms", "bounce_rate"): (1, 51, False)}

    with session_scope() as s:  # one more SMS bounce: 2 in 52 is 3.8%
        s.add(Message(dedupe_key="s-more", customer_id=customer.id, topic="marketing", channel="sms",
                      template="t", status="bounced", sent_at=NOW - timedelta(hours=1)))
    with session_scope() as s:
        flags = build_report(s, ReportSlice(), now=NOW)["flags"]
    assert [(f["channel"], f["rule"]) for f in flags if f["raised"]] == [
        ("email", "spam_report_rate"), ("sms", "bounce_rate")]


def test_the_cli_prints_json_with_stable_keys_tables_and_a_plot(sqlite_url, tmp_path):
    seed()
    runner = CliRunner()
    result = runner.invoke(app, ["report", "campaign", "spring", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"funnel", "rates", "breakdown", "variants", "flags"} <= set(data)
    assert data["funnel"]["opened"] == 2

    chart = tmp_path / "spring.png"
    result = runner.invoke(app, ["report", "campaign", "spring", "--plot", str(chart)],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "opened (unique, by people)" in result.output and "machine opens" in result.output
    assert "By channel" in result.output and "Sender health" in result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    incident = runner.invoke(app, ["report", "incident", "INC-7", "--json"])
    assert json.loads(incident.output)["funnel"]["phone_tasks_done_within_sla"] == 1
    overview = runner.invoke(app, ["report", "overview", "--since", "7d"])
    assert overview.exit_code == 0 and "Report: since" in overview.output

    missing = runner.invoke(app, ["report", "campaign", "nope"])
    assert missing.exit_code == 1 and "no campaign named 'nope'" in missing.output
    bad = runner.invoke(app, ["report", "overview", "--since", "forever"])
    assert bad.exit_code == 2 and "not a period" in bad.output


def test_ledger_values_are_printed_as_text_never_as_markup(sqlite_url):
    with session_scope() as s:
        customer = Customer(external_id="c")
        s.add(customer)
        s.flush()
        s.add(Message(dedupe_key="k", customer_id=customer.id, topic="marketing", channel="email",
                      template="t", status="suppressed",
                      reason_codes=["[bold red]x[/]", "[link=evil]r[/link]"]))
        s.add(Message(dedupe_key="k2", customer_id=customer.id, topic="marketing", channel="email",
                      template="plain", status="suppressed"))
    result = CliRunner().invoke(app, ["report", "overview"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[bold red]x[/]" in result.output and "[link=evil]r[/link]" in result.output


def test_the_plot_draws_the_variants_side_by_side(sqlite_url, tmp_path):
    from sqlalchemy import update

    from orchestrator.reports.plot import plot_report

    ids = seed()
    with session_scope() as s:
        for n, name in enumerate(["opened", "machine", "clicked", "bounced", "dropped", "sms"]):
            s.execute(update(Message).where(Message.id == ids[name]).values(variant="a" if n % 2 else "b"))
    with session_scope() as s:
        report = build_report(s, ReportSlice(campaign="spring"), now=NOW)
    assert [row["variant"] for row in report["variants"]["rows"]] == ["a", "b"]
    chart = plot_report(report, tmp_path / "variants.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
