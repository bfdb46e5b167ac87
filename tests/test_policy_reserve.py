import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.consent import record_consent, suppress_address, update_preferences
from orchestrator.db import session_scope
from orchestrator.models import Campaign, Customer, Incident, Message
from orchestrator.policy import Intent, PolicyError, decide_chunk, load_policy, reserve_chunk
from orchestrator.policy.explain import UnknownCustomer, explain_customer
from orchestrator.policy.plan import plan_audience
from orchestrator.settings import REPO_ROOT
from tests.support.statements import recorded_statements

POLICY = load_policy(REPO_ROOT / "policy.yaml")
NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)


def add_customers(n: int, **kw) -> list[int]:
    with session_scope() as s:
        rows = [
            Customer(external_id=f"ext-{i}-{kw.get('tier', 'std')}", email=f"c{i}@example.com",
                     phone=f"+1555{i:07d}", **kw)
            for i in range(n)
        ]
        s.add_all(rows)
        s.flush()
        return [c.id for c in rows]


def marketing(ids, key="spring", **kw) -> list[Intent]:
    return [Intent(customer_id=i, topic="marketing", template="promo", dedupe_key=key, **kw) for i in ids]


def ledger() -> list[Message]:
    with session_scope() as s:
        return list(s.exec(select(Message).order_by(Message.id)).scalars())


def test_reserve_writes_every_decision_with_reasons_and_ids(db_url):
    ids = add_customers(3)
    with session_scope() as s:
        record_consent(s, ids[1], "email", "marketing", "opted_out", "test")
        update_preferences(s, ids[2], "test", do_not_contact=True)
    deadline = NOON + timedelta(days=1)
    intents = marketing(ids, data={"offer": "10%", "items": [1, 2]}, deadline=deadline)
    result = reserve_chunk(intents, now=NOON, policy=POLICY)
    assert result.counts == {"planned": 2, "suppressed": 1}
    rows = {m.customer_id: m for m in ledger()}
    assert {r.message_id for r in result.rows} == {m.id for m in rows.values()}
    assert (rows[ids[0]].channel, rows[ids[0]].status, rows[ids[0]].tone) == ("email", "planned", "playful")
    assert rows[ids[0]].data == {"offer": "10%", "items": [1, 2]} and rows[ids[0]].priority == 10
    assert rows[ids[0]].deadline == deadline and rows[ids[0]].template == "promo"
    assert rows[ids[1]].channel == "social" or rows[ids[1]].channel == "sms"
    assert "consent:opted_out" in rows[ids[1]].reason_codes
    assert (rows[ids[2]].status, rows[ids[2]].reason_codes) == ("suppressed", ["do_not_contact"])
    assert all(m.reason_text for m in rows.values())
    assert rows[ids[0]].send_at == NOON


def test_rerun_reports_duplicates_and_writes_nothing_new(db_url):
    ids = add_customers(4)
    first = reserve_chunk(marketing(ids), now=NOON, policy=POLICY)
    # An hour later email is opted out: the re-run must not route the same key to another channel.
    with session_scope() as s:
        record_consent(s, ids[0], "email", "*", "opted_out", "test")
    again = reserve_chunk(marketing(ids) + marketing(ids[:1]), now=NOON + timedelta(hours=1), policy=POLICY)
    assert again.counts == {"duplicate": 4}
    assert {r.message_id for r in again.rows} == {r.message_id for r in first.rows}
    assert len(ledger()) == 4


def test_caps_count_the_ledger_across_runs(db_url):
    ids = add_customers(2)
    reserve_chunk(marketing(ids, key="a"), now=NOON, policy=POLICY)
    second = reserve_chunk(marketing(ids, key="b"), now=NOON + timedelta(days=1), policy=POLICY)
    assert second.counts == {"suppressed": 2}
    assert all("cap:marketing-2d" in m.reason_codes for m in ledger() if m.dedupe_key == "b")
    third = reserve_chunk(marketing(ids, key="c"), now=NOON + timedelta(days=2, minutes=1), policy=POLICY)
    assert third.counts == {"planned": 2}


def test_bounced_addresses_are_unreachable(db_url):
    (cid,) = add_customers(1)
    with session_scope() as s:
        suppress_address(s, "email", "c0@example.com", "bounce", "webhook:sendgrid")
    result = reserve_chunk(
        [Intent(customer_id=cid, topic="transactional", template="receipt", dedupe_key="r1")],
        now=NOON, policy=POLICY,
    )
    (row,) = ledger()
    assert (row.channel, row.status) == ("sms", "planned") and result.rows[0].channel == "sms"
    assert row.reason_codes[:2] == ["suppressed:bounce", "fallback:email->sms"]


def test_premium_major_outage_also_escalates_to_a_phone_row(db_url):
    (cid,) = add_customers(1, tier="premium", timezone="Europe/Berlin")
    night = datetime(2026, 5, 6, 22, 0, tzinfo=UTC)  # midnight in Berlin
    intent = Intent(customer_id=cid, topic="outage", template="outage", dedupe_key="inc-7",
                    data={"severity": "major"}, incident_id=None)
    result = reserve_chunk([intent], now=night, policy=POLICY)
    assert sorted((r.channel, r.status) for r in result.rows) == [("email", "planned"), ("phone", "deferred")]
    phone = next(m for m in ledger() if m.channel == "phone")
    assert phone.send_at == datetime(2026, 5, 7, 6, 0, tzinfo=UTC)  # 08:00 Berlin summer time
    assert phone.reason_codes[0] == "high_touch:premium-major-outage"
    assert "quiet_hours:phone" in phone.reason_codes


def test_bad_input_is_rejected_before_anything_is_written(db_url):
    ids = add_customers(2)
    bad = marketing(ids[:1]) + [Intent(customer_id=ids[1], topic="newsletter", template="t", dedupe_key="x")]
    with pytest.raises(PolicyError, match="unknown topic 'newsletter'"):
        reserve_chunk(bad, now=NOON, policy=POLICY)
    with pytest.raises(ValueError, match="send_time"):
        reserve_chunk(marketing(ids, send_time="soonish"), now=NOON, policy=POLICY)
    with pytest.raises(ValueError, match="unknown customer id 999999"):
        reserve_chunk(marketing([ids[0], 999999]), now=NOON, policy=POLICY)
    assert ledger() == []


def _statements(url: str, fn) -> int:
    with recorded_statements(url) as seen:
        fn()
    return len(seen)


def test_a_chunk_costs_the_same_queries_whatever_its_size(db_url):
    ids = add_customers(300)
    # Some history, preferences and consent so every bulk query has rows to return.
    reserve_chunk(marketing(ids, key="warm-up"), now=NOON - timedelta(days=1), policy=POLICY)
    with session_scope() as s:
        for cid in ids[::7]:
            update_preferences(s, cid, "test", frequency="weekly", preferred_channels=["sms"])
            record_consent(s, cid, "sms", "support", "opted_out", "test")

    def support(sub, key):
        return [Intent(customer_id=i, topic="support", template="t", dedupe_key=key) for i in sub]

    small = _statements(db_url, lambda: reserve_chunk(support(ids[:5], "s"), now=NOON, policy=POLICY))
    large = _statements(db_url, lambda: reserve_chunk(support(ids[5:], "l"), now=NOON, policy=POLICY))
    assert small == large
    statuses = {m.status for m in ledger() if m.dedupe_key == "l"}
    assert statuses == {"planned", "deferred"}  # the weekly preference defers some


def test_decide_chunk_writes_nothing(db_url):
    ids = add_customers(3)
    with session_scope() as s:
        decisions = decide_chunk(s, marketing(ids), NOON, POLICY)
    assert [d.outcome for d in decisions] == ["send"] * 3
    assert ledger() == []


def test_plan_counts_outcomes_channels_and_reasons_without_writing(db_url):
    ids = add_customers(4)
    with session_scope() as s:
        record_consent(s, ids[0], "*", "marketing", "opted_out", "test")
        record_consent(s, ids[1], "email", "marketing", "opted_out", "test")
    reserve_chunk(marketing(ids[2:3], key="earlier"), now=NOON - timedelta(hours=3), policy=POLICY)
    before = len(ledger())
    summary = plan_audience(None, "marketing", "promo", NOON, customer_ids=ids, policy=POLICY, chunk_size=3)
    assert summary.customers == 4
    assert dict(summary.outcomes) == {"suppress": 2, "send": 2}
    assert dict(summary.channels) == {"email": 1, "sms": 1}
    assert summary.reasons["consent:opted_out"] == 2 and summary.reasons["cap:marketing-2d"] == 1
    assert len(ledger()) == before


def test_explain_by_external_id_and_the_cli(db_url):
    (cid,) = add_customers(1)
    reserve_chunk(marketing([cid], key="a"), now=NOON, policy=POLICY)
    reserve_chunk(marketing([cid], key="b"), now=NOON + timedelta(hours=1), policy=POLICY)
    with session_scope() as s:
        explained = explain_customer(s, "ext-0-std")
        assert [e.dedupe_key for e in explained] == ["b", "a"]
        assert explain_customer(s, str(cid), limit=1)[0].status == "suppressed"
        with pytest.raises(UnknownCustomer):
            explain_customer(s, "nobody")
    runner = CliRunner()
    out = runner.invoke(app, ["explain", "ext-0-std", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data[0]["reason_codes"] == ["cap:marketing-2d"] and data[1]["status"] == "planned"
    table = runner.invoke(app, ["explain", "ext-0-std"])
    assert table.exit_code == 0 and "suppressed" in table.stdout and "planned" in table.stdout
    missing = runner.invoke(app, ["explain", "nobody"])
    assert missing.exit_code == 1 and "no customer" in missing.output


def test_explain_names_the_campaign_or_incident_update_and_how_to_settle_a_flagged_row(db_url, monkeypatch):
    from orchestrator.cli.output import console

    monkeypatch.setattr(console, "width", 300)
    (cid,) = add_customers(1)
    with session_scope() as s:
        campaign = Campaign(name="spring-2026", segment="all", topic="marketing", template="promo")
        incident = Incident(incident_key="INC-42")
        s.add_all([campaign, incident])
        s.flush()
        campaign_id, incident_id = campaign.id, incident.id
    reserve_chunk(marketing([cid], key="campaign:spring-2026", campaign_id=campaign_id), now=NOON,
                  policy=POLICY)
    for status, hours in (("investigating", 1), ("resolved", 2)):
        intent = Intent(customer_id=cid, topic="outage", template="outage_notice", incident_id=incident_id,
                        dedupe_key=f"incident:INC-42:{status}", data={"status": status})
        reserve_chunk([intent], now=NOON + timedelta(hours=hours), policy=POLICY)
    loyalty = Intent(customer_id=cid, topic="loyalty", template="anniversary", dedupe_key="anniversary:2026")
    reserve_chunk([loyalty], now=NOON + timedelta(hours=3), policy=POLICY)
    with session_scope() as s:
        key = "incident:INC-42:investigating"
        flagged = s.scalars(select(Message).where(Message.dedupe_key == key)).one()
        flagged.status = "reconcile"
        flagged_id = flagged.id
    with session_scope() as s:
        explained = {e.dedupe_key: e for e in explain_customer(s, "ext-0-std")}
    assert explained["campaign:spring-2026"].belongs_to == "campaign spring-2026"
    assert explained["incident:INC-42:investigating"].belongs_to == "incident INC-42 (investigating)"
    assert explained["incident:INC-42:resolved"].belongs_to == "incident INC-42 (resolved)"
    assert explained["anniversary:2026"].belongs_to == "anniversary (anniversary:2026)"
    settle = f"orchestrator reconcile settle {flagged_id} --sent"
    assert settle in explained["incident:INC-42:investigating"].settle_with
    assert [e.settle_with for k, e in explained.items() if k != "incident:INC-42:investigating"] == [None] * 3
    out = CliRunner().invoke(app, ["explain", "ext-0-std"])
    assert out.exit_code == 0, out.output
    assert "INC-42 (investigating)" in out.stdout and "INC-42 (resolved)" in out.stdout
    assert f"Message {flagged_id} needs reconciling" in out.stdout and settle in out.stdout
    data = json.loads(CliRunner().invoke(app, ["explain", "ext-0-std", "--json"]).stdout)
    assert {d["belongs_to"] for d in data} >= {"campaign spring-2026", "incident INC-42 (resolved)"}


def test_run_summaries_call_out_flagged_messages_with_the_command_that_settles_them(capsys):
    from flows.common import dispatch_markdown
    from orchestrator.cli.flow_runs import print_flow_summary
    from orchestrator.dispatch.report import DispatchReport

    report = DispatchReport()
    report.reconcile.extend([7, 9])
    markdown = dispatch_markdown(report, title="Dispatch")
    assert "orchestrator reconcile settle 7 9 --sent" in markdown
    result = {"reserved": {"planned": 2}, "dispatched": {"reconcile": 2}, "reconcile_ids": [7, 9],
              "ledger": {"channels": {"email": {"sent": 1, "reconcile": 3}}}}
    print_flow_summary(result, "Campaign")
    printed = " ".join(capsys.readouterr().out.split())
    assert "3 message(s) need reconciling" in printed
    assert "orchestrator reconcile settle 7 9 --sent" in printed
    print_flow_summary({**result, "reconcile_ids": [], "ledger": {"channels": {"email": {"sent": 1}}}}, "C")
    assert "reconciling" not in capsys.readouterr().out


def test_ledger_never_holds_a_dedupe_key_twice_per_customer(db_url):
    ids = add_customers(5)
    intents = marketing(ids) + [Intent(customer_id=i, topic="outage", template="o", dedupe_key="spring")
                                for i in ids]
    reserve_chunk(intents, now=NOON, policy=POLICY)
    with session_scope() as s:
        counts = s.exec(
            select(Message.customer_id, func.count()).group_by(Message.customer_id, Message.dedupe_key)
        ).all()
    assert sorted(n for _, n in counts) == [1] * 5


def test_plan_command_for_a_segment_writes_nothing(db_url, monkeypatch):
    from orchestrator.cli.output import console

    monkeypatch.setattr(console, "_width", 200)  # the reasons' words on one line each
    premium = add_customers(3, tier="premium", timezone="Asia/Kathmandu")
    add_customers(2)
    with session_scope() as s:
        record_consent(s, premium[0], "*", "marketing", "opted_out", "test")
    runner = CliRunner()
    args = ["plan", "--segment", "premium", "--topic", "marketing", "--template", "spring_sale",
            "--at", "2026-05-06T01:00:00+00:00", "--send-time", "10:00", "--sample-data"]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["customers"] == 3
    assert summary["outcomes"] == {"suppress": 1, "defer": 2} and summary["channels"] == {"email": 2}
    assert summary["reasons"]["send_time:10:00"] == 3 and summary["reasons"]["consent:opted_out"] == 1
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "defer" in table.stdout
    shown = " ".join(table.stdout.split())
    assert "scheduled for 10:00 in the customer's own time zone" in shown  # each code in words
    assert "opted out of this topic or channel" in shown
    assert ledger() == []
    unknown = runner.invoke(app, ["plan", "--segment", "nope", "--template", "spring_sale", "--sample-data"])
    assert unknown.exit_code == 2 and "unknown segment 'nope'" in unknown.output
    bad_topic = runner.invoke(app, ["plan", "--segment", "premium", "--topic", "spam", "--template",
                                    "product_launch", "--sample-data"])
    assert bad_topic.exit_code == 2 and "unknown topic 'spam'" in bad_topic.output
    bad_at = runner.invoke(app, [*args[:7], "--at", "yesterday", "--sample-data"])
    assert bad_at.exit_code == 2 and "--at" in bad_at.output


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--template", "promo"], "unknown message 'promo'"),
        (["--template", "spring_sale"], "needs these facts in data: offer, code, ends_on, shop_url"),
        (["--template", "spring_sale", "--data", "offer=20%", "--data", "code=X"],
         "needs these facts in data: ends_on, shop_url"),
        (["--template", "spring_sale", "--topic", "security", "--sample-data"], "would dodge the marketing"),
        (["--template", "spring_sale", "--topic", "gossip", "--sample-data"], "unknown topic 'gossip'"),
        (["--template", "spring_sale", "--tone", "sarcastic", "--sample-data"], "unknown tone 'sarcastic'"),
        (["--template", "spring_sale", "--sample-data", "--send-time", "25:99"], "send_time must be"),
    ],
)
def test_plan_refuses_what_campaign_run_refuses_before_reading_the_audience(db_url, monkeypatch, extra,
                                                                           error):
    import orchestrator.policy.plan as plan_module

    def audience_read(*args, **kwargs):
        raise AssertionError("the audience was read before the parameters were checked")

    monkeypatch.setattr(plan_module, "plan_audience", audience_read)
    runner = CliRunner()
    planned = runner.invoke(app, ["plan", "--segment", "all", *extra])
    campaign = runner.invoke(app, ["campaign", "run", "check", "--segment", "all", "--dry-run", *extra])
    for result in (planned, campaign):
        assert result.exit_code == 2, result.output
        assert error in " ".join(result.output.split())


def test_bad_campaign_parameters_fail_before_prefect_is_loaded(sqlite_url):
    # Prefect takes seconds to import and start: a typo must not wait for it.
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from orchestrator.cli import app\n"
        "for args in (['plan', '--segment', 'all', '--template', 'spring_sale'],\n"
        "             ['campaign', 'run', 'x', '--segment', 'all', '--template', 'spring_sale']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 2\n"
        "print('prefect' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_plan_command_names_the_adapter_rate_that_paces_the_notice(db_url, tmp_path, monkeypatch,
                                                                    fake_twilio):
    """No `rates:` in the policy, Twilio set up at its long code's 1 SMS a second: 30 customers
    reached only by SMS take about half a minute, and the command says whose rate that is."""
    from tests.test_twilio_default_rate import use_fake_twilio, use_rates

    use_rates(tmp_path, monkeypatch, None)
    use_fake_twilio(monkeypatch, fake_twilio, "1")
    with session_scope() as s:
        s.add_all([Customer(external_id=f"sms-only-{i}", phone=f"+1555{i:07d}", timezone="UTC")
                   for i in range(30)])
    args = ["plan", "--segment", "all", "--template", "outage_notice", "--sample-data",
            "--at", "2026-05-06T12:00:00+00:00"]
    summary = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert summary["channels"] == {"sms": 30} and summary["paced_by"] == "sms"
    last = datetime.fromisoformat(summary["last_send_at"]) - datetime(2026, 5, 6, 12, tzinfo=UTC)
    assert timedelta(seconds=25) <= last <= timedelta(seconds=30)
    table = CliRunner().invoke(app, args)
    assert "paced by the sending adapter's own rate for 'sms'" in " ".join(table.stdout.split())


def test_plan_warns_when_a_paced_lane_runs_into_the_customers_quiet_hours(db_url, tmp_path, monkeypatch,
                                                                           fake_twilio):
    """At 1 SMS a second, 30 texts take half a minute: for the 10 customers whose clock reads 20:59:50
    (Etc/GMT-9), quiet hours begin at 21:00 before their turn may come; the 20 at midday are clear."""
    from tests.test_twilio_default_rate import use_fake_twilio, use_rates

    use_rates(tmp_path, monkeypatch, None)
    use_fake_twilio(monkeypatch, fake_twilio, "1")
    with session_scope() as s:
        s.add_all([Customer(external_id=f"sms-only-{i}", phone=f"+1555{i:07d}",
                            timezone="Etc/GMT-9" if i < 10 else "UTC") for i in range(30)])
    args = ["plan", "--segment", "all", "--template", "outage_notice", "--sample-data",
            "--at", "2026-05-06T11:59:50+00:00"]
    summary = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert summary["outcomes"] == {"send": 30} and summary["quiet_hours_reached"] == {"sms": 10}
    shown = " ".join(CliRunner().invoke(app, args).stdout.split())
    assert "Up to 10 of the sms messages sent at once may meet the customer's quiet hours before their " \
           "turn at that rate: those wait until they end (quiet_hours:sms)." in shown

    earlier = json.loads(CliRunner().invoke(app, [*args[:-1], "2026-05-06T11:50:00+00:00", "--json"]).stdout)
    assert earlier["outcomes"] == {"send": 30} and earlier["quiet_hours_reached"] == {"sms": 0}
