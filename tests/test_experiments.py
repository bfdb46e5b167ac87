"""Tone experiments: stable assignment, shares by weight, holdouts that hear nothing and hold no cap slot."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from flows.campaign import campaign
from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.experiments import (
    HOLDOUT,
    ExperimentError,
    build_experiment,
    parse_percent,
    parse_variant_option,
)
from orchestrator.models import Campaign
from tests.support.flow_world import MARKETING_FACTS, add_customer, by_customer, ledger, use_fake_providers

TWO_TONES = [{"tone": "appreciative"}, {"tone": "professional"}]


def within(count: int, n: int, share: float) -> bool:
    """``count`` of ``n`` is within 4.5 standard deviations of a binomial with ``share``."""
    return abs(count - n * share) <= 4.5 * math.sqrt(n * share * (1 - share))


def test_assignment_is_stable_and_follows_the_weights_over_10000_customers():
    experiment = build_experiment([{"tone": "appreciative", "weight": 2}, {"tone": "professional"}], "5%")
    first = [experiment.assign("spring", cid) for cid in range(1, 10_001)]
    # a re-run, in another order, from a freshly built experiment: the same group for everyone
    again = build_experiment([{"tone": "appreciative", "weight": 2}, {"tone": "professional"}], 5)
    assert [again.assign("spring", cid) for cid in reversed(range(1, 10_001))] == first[::-1]
    shares = Counter(first)
    assert within(shares[HOLDOUT], 10_000, 0.05)
    assert within(shares["appreciative"], 10_000, 0.95 * 2 / 3)
    assert within(shares["professional"], 10_000, 0.95 / 3)
    # another campaign shuffles customers anew: groups are not the same people every time
    other = [experiment.assign("autumn", cid) for cid in range(1, 10_001)]
    assert sum(a == b for a, b in zip(first, other, strict=True)) < 0.7 * 10_000


def test_a_holdout_without_variants_splits_into_holdout_and_main():
    experiment = build_experiment(None, 10)
    groups = Counter(experiment.assign("launch", cid) for cid in range(1, 10_001))
    assert set(groups) == {HOLDOUT, "main"} and within(groups[HOLDOUT], 10_000, 0.10)
    assert build_experiment(None, 0).assign("launch", 1) is None  # no experiment, no variant


@pytest.mark.parametrize("variants, holdout, message", [
    ([{"tone": "professional"}, {"tone": "professional"}], 0, "two variants are named"),
    ([{"name": "holdout", "tone": "professional"}, {"tone": "appreciative"}], 0, "name of the holdout"),
    ([{"tone": "professional", "weight": 0}, {"tone": "appreciative"}], 0, "greater than 0"),
    ([{"tone": "professional", "colour": "red"}, {"tone": "appreciative"}], 0, "colour"),
    ([{"tone": "professional"}], 0, "compares nothing"),
    (TWO_TONES, "100%", "below 100%"),
    (TWO_TONES, "five", "percentage"),
])
def test_experiments_that_cannot_work_are_refused(variants, holdout, message):
    with pytest.raises(ExperimentError, match=message):
        build_experiment(variants, holdout)


def test_cli_variant_options_parse_and_refuse_clearly():
    assert parse_variant_option("tone=professional,weight=2,name=B").model_dump() == {
        "name": "B", "tone": "professional", "template": None, "weight": 2.0}
    with pytest.raises(ExperimentError, match="KEY=VALUE"):
        parse_variant_option("professional")
    assert parse_percent("5%") == parse_percent(5) == 5.0


@pytest.fixture
def providers(monkeypatch, fake_sendgrid, fake_twilio):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid, twilio=fake_twilio)
    return fake_sendgrid, fake_twilio


def test_holdout_customers_get_a_suppressed_row_hear_nothing_and_keep_their_cap_slot(
        prefect_harness, sqlite_url, providers):
    sendgrid, _twilio = providers
    ids = [add_customer(f"c{n}", email=f"c{n}@example.com") for n in range(12)]
    experiment = build_experiment(TWO_TONES, 25)
    expected = {cid: experiment.assign("spring", cid) for cid in ids}
    assert set(expected.values()) == {HOLDOUT, "appreciative", "professional"}  # all groups present

    parameters = dict(name="spring", segment="all", template="spring_sale", data=MARKETING_FACTS,
                      chunk_size=5, variants=TWO_TONES, holdout="25%", goal_event="purchase")
    assert campaign(**parameters, return_state=True).is_completed()

    rows = by_customer(ledger("campaign:spring"))
    assert {cid: m.variant for cid, m in rows.items()} == expected
    for cid, m in rows.items():
        if expected[cid] == HOLDOUT:
            assert (m.status, m.reason_codes) == ("suppressed", ["holdout:spring"])
            assert "holdout group of campaign spring" in m.reason_text
            assert sendgrid.requests_to(f"c{ids.index(cid)}@example.com") == []  # never reached
        else:
            assert m.status == "sent" and m.tone == expected[cid]
            assert len(sendgrid.requests_for(m.id)) == 1
    with session_scope() as s:
        stored = s.get(Campaign, rows[ids[0]].campaign_id)
        assert (stored.holdout_percent, stored.goal_event, stored.attribution_days) == (25.0, "purchase", 7)
        assert [v["name"] for v in stored.variants] == ["appreciative", "professional"]

    # Conversions within the window count for the customer's group in the report.
    from orchestrator.conversions import Conversion, record_conversions
    from orchestrator.models import utcnow
    from orchestrator.reports import ReportSlice, build_report

    buyers = [cid for cid in ids if expected[cid] in (HOLDOUT, "professional")][:3]
    with session_scope() as s:
        soon = utcnow() + timedelta(hours=1)
        record_conversions(s, [(n, Conversion(f"c{ids.index(cid)}", "purchase", soon))
                               for n, cid in enumerate(buyers)], "test")
        variants = build_report(s, ReportSlice(campaign="spring"))["variants"]
    rows = {r["variant"]: r for r in variants["rows"]}
    assert {v: r["customers"] for v, r in rows.items()} == Counter(expected.values())
    assert sum(r["conversions"] for r in rows.values()) == len(buyers)
    assert rows[HOLDOUT]["delivered"] == 0 and variants["winner"] is None  # twelve customers prove nothing

    # A re-run keeps every customer's group and sends nothing twice.
    again = campaign(**parameters, return_state=True).result()
    assert again["reserved"] == {"duplicate": 12}
    assert {cid: m.variant for cid, m in by_customer(ledger("campaign:spring")).items()} == expected
    # ... and the experiment cannot change under a running campaign.
    with pytest.raises(ExperimentError, match="new campaign name"):
        campaign(**{**parameters, "holdout": 50})

    # Held-out customers hold no marketing cap slot (1 per 2 days): the next campaign reaches them,
    # while everyone who got the spring message is capped.
    campaign(name="summer", segment="all", template="spring_sale", data=MARKETING_FACTS, chunk_size=5)
    summer = by_customer(ledger("campaign:summer"))
    assert {cid for cid, m in summer.items() if m.status == "sent"} == {
        cid for cid, group in expected.items() if group == HOLDOUT}


def test_cli_runs_an_experiment_and_refuses_bad_variants(prefect_harness, sqlite_url, providers):
    for n in range(6):
        add_customer(f"c{n}", email=f"c{n}@example.com")
    runner = CliRunner()
    command = ["campaign", "run", "tones", "--segment", "all", "--template", "spring_sale", "--sample-data"]
    bad = runner.invoke(app, [*command, "--variant", "tone=sarcastic", "--variant", "tone=professional"])
    assert bad.exit_code == 2 and "sarcastic" in bad.output
    assert ledger() == {}
    dry = runner.invoke(app, [*command, "--variant", "tone=appreciative", "--variant", "tone=professional",
                              "--holdout", "50", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    held = sum(build_experiment(TWO_TONES, 50).assign("tones", cid) == HOLDOUT for cid in range(1, 7))
    assert json.loads(dry.output)["reasons"].get("holdout:tones", 0) == held  # the plan shows the holdout
    assert ledger() == {}
    done = runner.invoke(app, [*command, "--variant", "tone=appreciative", "--variant", "tone=professional",
                               "--holdout", "5", "--goal", "purchase", "--json"])
    assert done.exit_code == 0, done.output
    variants = {m.variant for m in ledger("campaign:tones").values()}
    assert variants <= {"appreciative", "professional", HOLDOUT}
    assert variants & {"appreciative", "professional"}


def test_prefect_yaml_and_the_ui_form_declare_the_experiment_as_typed_parameters():
    import yaml
    from prefect.utilities.callables import parameter_schema

    from orchestrator.settings import REPO_ROOT

    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    parameters = next(d for d in config["deployments"] if d["name"] == "campaign")["parameters"]
    validated = campaign.validate_parameters(parameters)
    assert validated["holdout"] == 5.0 and [v.tone for v in validated["variants"]] == ["appreciative",
                                                                                      "professional"]
    schema = parameter_schema(campaign.fn).model_dump_for_openapi()
    properties = schema["properties"]
    assert properties["holdout"]["type"] == "number"
    variant = schema["definitions"]["VariantSpec"]["properties"]
    assert {"tone", "template", "weight", "name"} == set(variant)
    with pytest.raises(Exception, match="holdout"):
        campaign.validate_parameters({**parameters, "holdout": "half"})
