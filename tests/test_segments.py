from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, inspect, select

from orchestrator.customer_import import import_customers
from orchestrator.db import get_engine, session_scope
from orchestrator.models import Customer, utcnow
from orchestrator.segments import (
    Segment,
    SegmentError,
    compile_filter,
    count_audience,
    get_segment,
    iter_audience_chunks,
    load_segments,
)

REPO = Path(__file__).resolve().parents[1]
TODAY = utcnow().date()
PEOPLE = [
    # external_id, tier, email, phone, customer_since, attributes
    ("a", "premium", "a@example.com", "+12015550101", date(2015, 5, 1),
     {"region": "us-east", "nps": 9, "ltv": 1500.5, "vip": True, "interests": ["news", "events"],
      "renewal": "2027-01-15"}),
    ("b", "plus", None, "+447400123456", date(2021, 1, 10),
     {"region": "eu-west", "nps": 4, "ltv": 80, "vip": False, "interests": "newsletter;tips"}),
    ("c", "standard", "c@example.org", None, TODAY - timedelta(days=30),
     {"region": "US-EAST", "nps": "9", "ltv": 999.99}),
    ("d", "standard", "", None, None, {}),
]  # fmt: skip

CASES = [
    ({}, "abcd"),
    ({"tier": "premium"}, "a"),
    ({"tier": {"equals": "standard"}}, "cd"),
    ({"tier": {"not_equals": "standard"}}, "ab"),
    ({"tier": {"in": ["plus", "premium"]}}, "ab"),
    ({"email": {"exists": True}}, "ac"),
    ({"email": {"exists": False}}, "bd"),
    ({"email": {"contains": "EXAMPLE.ORG"}}, "c"),
    ({"customer_since": {"range": {"min": "2015-05-01", "max": "2021-01-10"}}}, "ab"),
    ({"customer_since": {"range": {"max": "-3y"}}}, "ab"),
    ({"customer_since": {"range": {"min": "-1y"}}}, "c"),
    ({"customer_since": {"exists": False}}, "d"),
    ({"id": {"range": {"min": 2, "max": 3}}}, "bc"),
    ({"attributes.region": {"equals": "us-east"}}, "a"),
    ({"attr.region": {"in": ["eu-west", "US-EAST"]}}, "bc"),
    ({"attr.region": {"not_equals": "us-east"}}, "bcd"),
    ({"attr.nps": {"equals": 9}}, "a"),  # "9" (text) is not the number 9
    ({"attr.nps": {"equals": "9"}}, "c"),
    ({"attr.nps": {"range": {"min": 0, "max": 6}}}, "b"),
    ({"attr.ltv": {"range": {"min": 80, "max": 999.99}}}, "bc"),
    ({"attr.vip": {"equals": True}}, "a"),
    ({"attr.vip": {"equals": False}}, "b"),
    ({"attr.vip": {"exists": True}}, "ab"),
    ({"attr.vip": {"exists": False}}, "cd"),
    ({"attr.renewal": {"range": {"min": "2027-01-01", "max": "2027-12-31"}}}, "a"),
    ({"attr.interests": {"contains": "news"}}, "ab"),  # list element, or substring of text
    ({"attr.interests": {"contains": "TIPS"}}, "b"),
    ({"attr.interests": {"contains": "%"}}, ""),  # LIKE wildcards are escaped
    ({"has": "email"}, "ac"),
    ({"has": ["email", "sms"]}, "a"),
    ({"has": "sms"}, "ab"),
    ({"or": [{"tier": "plus"}, {"attr.nps": {"equals": 9}}]}, "ab"),
    ({"and": [{"has": "email"}, {"not": {"tier": "premium"}}]}, "c"),
    ({"not": {"or": [{"attr.region": "us-east"}, {"attr.region": "eu-west"}]}}, "cd"),
    ({"tier": {"in": ["standard"], "not_equals": "premium"}, "has": "email"}, "c"),
]


@pytest.fixture
def people(db_url):
    with session_scope() as s:
        for external_id, tier, email, phone, since, attributes in PEOPLE:
            s.add(Customer(external_id=external_id, tier=tier, email=email, phone=phone,
                           customer_since=since, attributes=attributes))  # fmt: skip
    return db_url


def matching(session, filter: dict) -> str:
    query = select(Customer.external_id).where(compile_filter(filter)).order_by(Customer.external_id)
    return "".join(session.execute(query).scalars())


def test_every_operator_and_combinator_filters_in_the_database(people):
    with session_scope() as s:
        results = {str(f): matching(s, f) for f, _ in CASES}
    assert results == {str(f): expected for f, expected in CASES}


@pytest.mark.parametrize(
    ("filter", "path", "message"),
    [
        ({"tier; DROP TABLE customer": "x"}, "filter.tier; DROP TABLE customer", "unknown field"),
        ({"attributes.region'--": "x"}, "filter.attributes.region'--", "letters, digits and _"),
        ({"or": [{"tier": "a"}, {"tier": {"like": "a%"}}]}, "filter.or[1].tier.like", "unknown operator"),
        ({"tier": {"equals": 3}}, "filter.tier.equals", "quote the value"),
        ({"tier": {"range": {"min": "a"}}}, "filter.tier.range", "numbers or dates"),
        ({"customer_since": {"range": {"min": "last tuesday"}}}, "filter.customer_since.range.min", "date"),
        ({"attr.nps": {"range": {"min": 9, "max": 1}}}, "filter.attr.nps.range", "greater than max"),
        ({"attr.nps": {"in": []}}, "filter.attr.nps.in", "non-empty list"),
        ({"attr.nps": {"exists": "yes"}}, "filter.attr.nps.exists", "true or false"),
        ({"and": {"tier": "a"}}, "filter.and", "list"),
        ({"not": ["tier"]}, "filter.not", "mapping"),
        ({"has": "pigeon"}, "filter.has", "unknown channel"),
    ],
)
def test_bad_filters_are_rejected_before_anything_runs(filter, path, message):
    with pytest.raises(SegmentError) as caught:
        compile_filter(filter, segment="promo")
    assert f"segment 'promo': {path}:" in str(caught.value)
    assert message in str(caught.value)


def test_injected_values_are_bound_parameters(people):
    with session_scope() as s:
        assert matching(s, {"tier": "x'; DROP TABLE customer; --"}) == ""
        assert matching(s, {"attr.region": {"contains": "'; DELETE FROM customer; --"}}) == ""
    assert "customer" in inspect(get_engine()).get_table_names()
    with session_scope() as s:
        assert s.execute(select(func.count()).select_from(Customer)).scalar_one() == 4


def test_audience_streams_in_ascending_keyset_chunks(sqlite_url):
    with session_scope() as s:
        for i in range(25):
            s.add(Customer(external_id=f"s{i:02d}", tier="premium" if i % 5 else "standard",
                           attributes={"region": "us-east" if i < 12 else "eu-west"}))  # fmt: skip
    statements: list[str] = []
    event.listen(get_engine(), "before_cursor_execute", lambda *a: statements.append(a[2]))
    with session_scope() as s:
        premium = Segment("premium", "", {"tier": "premium"})
        chunks = list(iter_audience_chunks(s, premium, chunk_size=7))
        affected = list(iter_audience_chunks(s, premium, chunk_size=5, extra={"attr.region": "us-east"}))
        assert count_audience(s, premium) == 20
        assert count_audience(s, premium, extra={"attr.region": "us-east"}) == 9
    assert [len(c) for c in chunks] == [7, 7, 6]
    ids = [i for c in chunks for i in c]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert [len(c) for c in affected] == [5, 4]
    selects = [q for q in statements if q.lstrip().upper().startswith("SELECT CUSTOMER.ID")]
    assert len(selects) == 5 and all("LIMIT" in q and "ORDER BY customer.id" in q for q in selects)


def test_exact_multiple_of_chunk_size_yields_no_empty_chunk(sqlite_url):
    with session_scope() as s:
        s.add_all([Customer(external_id=f"m{i}") for i in range(6)])
    with session_scope() as s:
        assert [len(c) for c in iter_audience_chunks(s, "all", chunk_size=3)] == [3, 3]


def test_shipped_segments_compile_and_count_the_sample_customers(db_url):
    import_customers(REPO / "samples" / "customers.csv")
    segments = load_segments(REPO / "segments.yaml")
    assert len(segments) >= 7 and segments["all"].filter == {}
    with session_scope() as s:
        counts = {name: count_audience(s, segment) for name, segment in segments.items()}
    assert counts["all"] == 300
    assert all(0 < n < 300 for name, n in counts.items() if name != "all"), counts


def test_segments_file_errors_name_the_segment(tmp_path):
    bad = tmp_path / "segments.yaml"
    bad.write_text("segments:\n  ok: {description: fine, filter: {tier: premium}}\n"
                   "  broken:\n    filter: {or: [{tier: a}, {colour: red}]}\n")  # fmt: skip
    with pytest.raises(SegmentError, match=r"segment 'broken': filter.or\[1\].colour: unknown field"):
        load_segments(bad)
    bad.write_text("segments:\n  all: {filter: {tier: premium}}\n")
    with pytest.raises(SegmentError, match="built in"):
        load_segments(bad)
    bad.write_text("segments: [premium]\n")
    with pytest.raises(SegmentError, match="expected a mapping"):
        load_segments(bad)
    with pytest.raises(SegmentError, match="not found"):
        load_segments(tmp_path / "missing.yaml")
    with pytest.raises(SegmentError, match="unknown segment 'nope'"):
        get_segment("nope", REPO / "segments.yaml")


def test_the_default_segments_file_comes_from_settings(tmp_path, monkeypatch):
    own = tmp_path / "own.yaml"
    own.write_text("segments:\n  vip: {description: Very important, filter: {tier: premium}}\n")
    monkeypatch.setenv("ORCH_SEGMENTS_FILE", str(own))
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    assert set(load_segments()) == {"all", "vip"}
    assert get_segment("vip").description == "Very important"


def test_an_edited_segments_file_takes_effect_at_once(tmp_path):
    # Parsed segments are kept per file text (every chunk task reads the file): an edit is a new text.
    own = tmp_path / "segments.yaml"
    own.write_text("segments:\n  vip: {description: first, filter: {tier: premium}}\n")
    assert get_segment("vip", own).description == "first"
    own.write_text("segments:\n  vip: {description: second, filter: {tier: premium}}\n"
                   "  new: {filter: {tier: standard}}\n")
    assert get_segment("vip", own).description == "second"
    assert set(load_segments(own)) == {"all", "vip", "new"}
    own.write_text("segments:\n  broken: {filter: {colour: red}}\n")
    with pytest.raises(SegmentError, match="unknown field"):
        load_segments(own)
