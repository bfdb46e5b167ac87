"""The benchmark's own pieces: synthetic customers in bulk, and the fakes' tally that checks caps."""

from __future__ import annotations

from collections import Counter

from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from sqlmodel import select

from bench.fakes_process import FakesProcess
from bench.synth import seed_customers, seed_marketing_history
from orchestrator.db import session_scope
from orchestrator.models import ConsentEvent, Customer, Message
from orchestrator.policy import Intent, reserve_chunk


def test_synthetic_customers_are_reachable_mostly_consenting_and_capped_by_their_history(db_url):
    seed_customers(db_url, 200)
    seed_customers(db_url, 100)  # a second batch continues after the first ids

    with session_scope() as s:
        customers = s.exec(select(Customer)).all()
        consent = Counter(e.state for e in s.exec(select(ConsentEvent)).all())
        added = Customer(external_id="after-synth", email="late@example.com")
        s.add(added)
        s.flush()  # PostgreSQL: the id sequence was moved past the ids synth chose
        assert added.id == 301
    assert len(customers) == 300 and all(c.email and c.phone for c in customers)
    assert len({c.timezone for c in customers}) > 3
    assert sum(c.attributes["region"] == "us-east" for c in customers) == 30
    assert consent == {"opted_in": 270, "opted_out": 9}  # 90% and 3%

    emails = seed_marketing_history(db_url, every=10)
    assert len(emails) == 30
    intents = [Intent(customer_id=c.id, topic="marketing", template="spring_sale", dedupe_key="campaign:new")
               for c in customers]
    result = reserve_chunk(intents)
    with session_scope() as s:
        capped = {m.customer_id for m in s.exec(select(Message).where(Message.dedupe_key == "campaign:new",
                                                                       Message.status == "suppressed"))}
    history = {c.id for c in customers if c.email in emails}
    assert history <= capped and result.count("suppressed") >= len(history)


def test_the_fakes_in_their_own_process_count_what_each_address_got():
    with FakesProcess(latency=0) as fakes:
        endpoints = fakes.endpoints
        assert endpoints is not None
        client = SendGridAPIClient(api_key=endpoints.sendgrid_api_key, host=endpoints.sendgrid_url)
        for to in ("a@example.com", "b@example.com", "a@example.com"):
            assert client.send(Mail("news@example.com", to, "Hi", "Hello")).status_code == 202

        sendgrid = fakes.tally(watched=["b@example.com", "nobody@example.com"])["sendgrid"]
        assert (sendgrid["accepted"], sendgrid["addresses"], sendgrid["max_per_address"]) == (3, 2, 2)
        assert sendgrid["watched_accepted"] == 1

        fakes.reset()
        assert fakes.tally()["sendgrid"]["accepted"] == 0


def _results() -> dict:
    campaign = {"backend": "sqlite", "n": 10_000, "wall_s": 20.0, "customers_per_s": 500.0,
                "dispatched": {"sent": 9_700}, "sent_at_fakes": 9_700, "plan_reserve_s": 1.0, "render_s": 2.0,
                "provider_calls_s": 3.0, "claim_compose_record_s": 4.0, "peak_rss_mb": 200.0,
                "cpu_s": 15.0, "server_cpu_s": 5.0}
    scaled = [{"workers": k, "customers": 20_000, "wall_s": 40.0 / k, "customers_per_s": 500.0 * k,
               "sent_at_fakes": 9_000, "max_per_address": 1, "history_customers_reached": 0,
               "caps_hold": True}
              for k in (1, 2)]
    return {"started": "2026-01-01 00:00", "ended": "2026-01-01 00:20", "load": [1.0, 2.0], "latency_ms": 5.0,
            "provider_concurrency": 8, "campaign": [campaign], "outage": [], "memory": [], "scaleout": scaled,
            "baseline_b": {"n": 5_000, "wall_s": 40.0, "ms_per_message": 8.0},
            "baseline_a": {"n": 1_000, "wall_s": 20.0, "ms_per_message": 20.0, "cpu_s": 25.0,
                           "server_cpu_s": 15.0},
            "machine": {"cpu": "cpu", "cores": 2, "memory_mb": 1024, "os": "linux", "python": "3.11",
                        "prefect": "3", "sqlite": "3", "postgresql": "16", "sendgrid": "6", "twilio": "9"}}


def test_the_report_compares_with_both_baselines_and_keeps_the_notes(tmp_path):
    from bench.run import NOTES_MARKER, add_ratios, write_report

    results = _results()
    add_ratios(results)
    run = results["campaign"][0]
    assert run["ms_per_customer"] == 2.0
    assert run["bare_loop_s"] == 80.0 and run["vs_bare_loop"] == 0.25  # 8 ms x 10,000 messages
    assert run["bare_loop_extrapolated"] is True  # measured on 5,000, scaled to 10,000
    assert run["obvious_flow_cost_ratio"] == 10.0
    assert run["cpu_ms_per_customer"] == 2.0  # (15 + 5) s of CPU over 10,000 customers
    assert run["obvious_flow_cpu_ratio"] == 20.0  # A: (25 + 15) s over 1,000 messages
    assert [r["speedup"] for r in results["scaleout"]] == [1.0, 2.0]

    (tmp_path / "RESULTS.md").write_text(f"old tables\n{NOTES_MARKER}\nhand-written notes\n")
    text = write_report(results, tmp_path, "python -m bench.run").read_text()
    assert "old tables" not in text and text.endswith(f"{NOTES_MARKER}\nhand-written notes\n")
    assert "| sqlite | 10,000 | 20.0 | 15.0 | 500 | 2.00 | 9,700 (9,700) |" in text
    assert "| sqlite | 10,000 | 2.00 | 10.0 | 2.00 | 20.0 |" in text  # baseline A: 10x our wall, 20x our CPU
    assert "| 2 | 20,000 | 20.0 | 1,000 | 2.00 | 9,000 | 1 | 0 | yes |" in text


def test_baseline_c_sends_each_customer_once_in_requests_of_up_to_a_thousand(sqlite_url, fake_sendgrid,
                                                                             monkeypatch):
    from bench.baselines import best_sender
    from orchestrator.settings import get_settings

    seed_customers(sqlite_url, 1500)
    monkeypatch.setenv("ORCH_SENDGRID_API_KEY", fake_sendgrid.api_key)
    monkeypatch.setenv("ORCH_SENDGRID_HOST", fake_sendgrid.url)
    get_settings.cache_clear()

    result = best_sender(1500)

    accepted = fake_sendgrid.accepted()
    assert result["messages"] == 1500 and len(accepted) == 1500
    assert len({r.address for r in accepted}) == 1500
    assert sorted(Counter(id(r.http) for r in accepted).values()) == [500, 1000]  # one locale
    first = accepted[0].http.data["personalizations"][0]["substitutions"]
    assert first["-name-"] and first["-unsubscribe_url-"].startswith("http")


def test_the_report_benchmark_builds_its_history_in_bulk_and_times_both_reports(sqlite_url):
    from bench.bench_report import seed_history, time_reports
    from bench.run import report_section

    seeded = seed_history(sqlite_url, 500)
    assert seeded == {"messages": 500, "events": seeded["events"], "replies": 20}
    assert 1300 <= seeded["events"] <= 1700  # about 3 per message
    timed = time_reports(sqlite_url, 1)
    assert timed["campaign_messages"] == timed["overview_messages"] == 500
    assert timed["opened"] == 300  # delivered emails with i % 5 < 3, i % 4 == 0 or i % 10 == 1
    rows = report_section([{"backend": "sqlite", **seeded, **timed}])
    assert rows[1].startswith("## 6. Reports") and rows[-1].startswith("| sqlite | 500 |")


def test_the_contact_point_benchmark_reaches_everyone_on_its_arms_channel(tmp_path):
    from bench.bench_contact_points import run

    # run() raises unless each arm sent every customer its message through that arm's channel,
    # and asserts every chunk's lookup found each customer's address.
    report = run("sqlite", 1_200, 1, tmp_path)
    assert (report["customers"], report["chunks"]) == (1_200, 2)
    assert report["sms_total_s"] > 0 and report["whatsapp_total_s"] > 0
    assert report["total_ratio"] == report["whatsapp_total_s"] / report["sms_total_s"]
