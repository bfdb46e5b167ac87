"""The report's variant comparison and survey scores: intervals, lift, the two-proportion test, winners."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlmodel import select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.experiments import HOLDOUT
from orchestrator.models import Campaign, ConversionEvent, Customer, CustomerFeedback, Message, utcnow
from orchestrator.reports import ReportSlice, build_report
from orchestrator.reports.stats import proportion, two_proportion_p


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, written out, to check the library's answer against."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_intervals_and_the_two_proportion_test_agree_with_their_formulas():
    for k, n in ((0, 10), (3, 10), (120, 1000), (10, 10)):
        got = proportion(k, n)
        low, high = wilson(k, n)
        assert got["low"] == pytest.approx(low, abs=1e-6) and got["high"] == pytest.approx(high, abs=1e-6)
    assert proportion(0, 0)["value"] is None
    # the pooled two-proportion z-test, by hand
    k1, n1, k2, n2 = 100, 1000, 130, 1000
    pooled = (k1 + k2) / (n1 + n2)
    z = (k2 / n2 - k1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert two_proportion_p(k1, n1, k2, n2) == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert two_proportion_p(0, 50, 0, 60) == 1.0 and two_proportion_p(1, 0, 1, 5) is None


def seed_experiment(rates: dict[str, float], sizes: dict[str, int], seed: int, name: str = "tones") -> int:
    """A sent campaign with these groups; each customer converts with its group's rate, within the window."""
    rng = random.Random(seed)
    now = utcnow()
    start = now - timedelta(days=3)
    with session_scope() as s:
        campaign = Campaign(name=name, segment="all", topic="marketing", template="spring_sale",
                            goal_event="purchase", attribution_days=7, created_at=start,
                            variants=[{"name": v} for v in rates if v != HOLDOUT],
                            holdout_percent=5.0 if HOLDOUT in rates else 0.0)
        s.add(campaign)
        s.flush()
        customers, messages, events = [], [], []
        next_id = 1
        for group, n in sizes.items():
            for _ in range(n):
                cid = next_id
                next_id += 1
                customers.append({"id": cid, "external_id": f"{name}-{cid}", "name": "", "timezone": "UTC",
                                  "locale": "en", "tier": "standard", "attributes": {}, "created_at": now,
                                  "updated_at": now})
                held = group == HOLDOUT
                sent = None if held else start + timedelta(hours=1)
                messages.append({"dedupe_key": f"campaign:{name}", "customer_id": cid, "topic": "marketing",
                                 "channel": "email", "tone": None if held else group,
                                 "template": "spring_sale", "variant": group,
                                 "status": "suppressed" if held else "delivered", "campaign_id": campaign.id,
                                 "reason_codes": [f"holdout:{name}"] if held else [],
                                 "data": {}, "send_at": start, "sent_at": sent,
                                 "delivered_at": sent, "created_at": start, "updated_at": start})
                if rng.random() < rates[group]:
                    events.append({"customer_id": cid, "name": "purchase", "source": "test",
                                   "occurred_at": start + timedelta(days=2), "created_at": now})
                # never counted: before the window, after it, or another event
                events.append({"customer_id": cid, "name": "purchase", "source": "test",
                               "occurred_at": start - timedelta(days=1), "created_at": now})
                events.append({"customer_id": cid, "name": "purchase", "source": "test",
                               "occurred_at": start + timedelta(days=9), "created_at": now})
                if rng.random() < 0.5:
                    events.append({"customer_id": cid, "name": "signup", "source": "test",
                                   "occurred_at": start + timedelta(days=1), "created_at": now})
        s.execute(insert(Customer), customers)
        s.execute(insert(Message), messages)
        s.execute(insert(ConversionEvent), events)
        return campaign.id  # type: ignore[return-value]


def report(name: str = "tones") -> dict:
    with session_scope() as s:
        return build_report(s, ReportSlice(campaign=name))


def test_a_planted_effect_is_detected_with_its_lift_over_the_holdout(db_url):
    sizes = {"appreciative": 1900, "professional": 1900, HOLDOUT: 200}
    seed_experiment({"appreciative": 0.10, "professional": 0.16, HOLDOUT: 0.05}, sizes, seed=7)

    variants = report()["variants"]

    rows = {r["variant"]: r for r in variants["rows"]}
    assert {v: r["customers"] for v, r in rows.items()} == sizes
    for r in rows.values():  # each conversion counted once per customer, within the window only
        rate = r["rates"]["conversion_rate"]
        assert rate["numerator"] == r["conversions"] and rate["denominator"] == r["customers"]
        assert rate["low"] < rate["value"] < rate["high"]
    assert abs(rows["professional"]["rates"]["conversion_rate"]["value"] - 0.16) < 0.03
    assert rows[HOLDOUT]["delivered"] == 0 and "lift_over_holdout" not in rows[HOLDOUT]
    lift = rows["professional"]["lift_over_holdout"]
    assert lift["significant"] and lift["relative"] > 0.5
    assert variants["metric"] == "conversion_rate" and variants["winner"] == "professional"
    assert all(t["significant"] for t in variants["tests"])
    assert variants["goal"]["event"] == "purchase" and variants["goal"]["attribution_days"] == 7


def test_a_null_effect_is_not_called_a_winner(db_url):
    seed_experiment({"appreciative": 0.12, "professional": 0.12},
                    {"appreciative": 1500, "professional": 1500}, seed=11)
    variants = report()["variants"]
    assert variants["winner"] is None and variants["verdict"] == "not enough data"
    (test,) = variants["tests"]
    assert test["p_value"] >= 0.05


def test_survey_scores_per_variant_and_per_channel_and_tone_count_the_latest_answer(sqlite_url):
    seed_experiment({"appreciative": 0.0, "professional": 0.0}, {"appreciative": 3, "professional": 2},
                    seed=1)
    with session_scope() as s:
        messages = {m.customer_id: m for m in s.exec(select(Message))}
        answers = [(1, "csat", 5), (1, "csat", 2), (2, "csat", 4), (3, "csat", 5),  # appreciative: 2, 4, 5
                   (4, "nps", 10), (5, "nps", 3)]  # professional: NPS one promoter, one detractor
        for cid, scale, score in answers:
            s.add(CustomerFeedback(customer_id=cid, channel="email", message_id=messages[cid].id, score=score,
                                   scale=scale, source="rating_link"))
    result = report()
    rows = {r["variant"]: r for r in result["variants"]["rows"]}
    assert rows["appreciative"]["csat"]["answers"] == 3 and rows["appreciative"]["csat"]["satisfied"] == 2
    assert rows["professional"]["nps"] == {"answers": 2, "promoters": 1, "detractors": 1, "nps": 0.0}
    by_tone = {r["value"]: r for r in result["surveys"]["by"]["tone"]}
    assert by_tone["appreciative"]["csat"]["csat"]["value"] == pytest.approx(2 / 3, abs=1e-6)
    (email,) = result["surveys"]["by"]["channel"]
    assert email["value"] == "email" and email["csat"]["answers"] == 3 and email["nps"]["answers"] == 2


def test_the_cli_shows_the_comparison_and_the_verdict(sqlite_url):
    seed_experiment({"appreciative": 0.10, "professional": 0.10}, {"appreciative": 40, "professional": 40},
                    seed=3)
    runner = CliRunner()
    shown = runner.invoke(app, ["report", "campaign", "tones"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "Winner on conversion rate" in shown.output and "not enough data" in shown.output
    data = json.loads(runner.invoke(app, ["report", "campaign", "tones", "--json"]).output)
    assert {"rows", "winner", "verdict", "tests", "goal", "metric"} <= set(data["variants"])
    assert "surveys" in data
