"""Properties of the decisions for random histories, preferences, consents and clocks."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.consent import consent_allows
from orchestrator.policy import (
    CustomerFacts,
    Decision,
    HistoryEntry,
    Intent,
    decide_for_customer,
    load_policy,
)
from orchestrator.policy.timing import in_window
from orchestrator.settings import REPO_ROOT

POLICY = load_policy(REPO_ROOT / "policy.yaml")
CHANNELS = ["email", "sms", "social", "phone"]
TOPICS = list(POLICY.topics)
ZONES = ["UTC", "Asia/Kathmandu", "Pacific/Chatham", "America/New_York", "Europe/London",
         "Australia/Lord_Howe", "America/St_Johns", "Pacific/Kiritimati", "America/Santiago", "Asia/Kolkata"]
# DST transitions (UTC) of the zones above: clocks are drawn around them on purpose.
TRANSITIONS = [datetime(2026, 3, 8, 7), datetime(2026, 11, 1, 6), datetime(2026, 3, 29, 1),
               datetime(2026, 10, 25, 1), datetime(2026, 4, 4, 15), datetime(2026, 10, 3, 15),
               datetime(2026, 4, 5, 3), datetime(2026, 9, 6, 4), datetime(2026, 4, 4, 14)]

clocks = st.one_of(
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1)),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-48 * 60, 48 * 60)).map(
        lambda p: p[0] + timedelta(minutes=p[1])
    ),
).map(lambda d: d.replace(tzinfo=UTC))
local_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
consents = st.dictionaries(
    st.tuples(st.just(1), st.sampled_from(CHANNELS + ["*"]), st.sampled_from(TOPICS + ["*"])),
    st.sampled_from(["opted_in", "opted_out"]),
    max_size=5,
)


@st.composite
def customer_facts(draw) -> CustomerFacts:
    present = draw(st.sets(st.sampled_from(CHANNELS)))
    quiet = draw(st.none() | st.tuples(local_times, local_times).filter(lambda w: w[0] != w[1]))
    return CustomerFacts(
        id=1,
        tier=draw(st.sampled_from(["standard", "premium"])),
        zone=ZoneInfo(draw(st.sampled_from(ZONES))),
        addresses={ch: f"addr-{ch}" for ch in present},
        suppressed={ch: "bounce" for ch in draw(st.sets(st.sampled_from(CHANNELS), max_size=2))},
        consent=draw(consents),
        preferred_channels=draw(st.lists(st.sampled_from(CHANNELS), unique=True, max_size=2)),
        frequency=draw(st.sampled_from(["any", "any", "daily", "weekly", "monthly"])),
        quiet=quiet,
        do_not_contact=draw(st.sampled_from([False, False, True])),
        # Messages that hold no cap slot in any rule: they must not change what the caps allow.
        history=[HistoryEntry("transactional", ch, draw(clocks)) for ch in draw(st.lists(
            st.sampled_from(CHANNELS), max_size=3))],
    )


steps = st.lists(
    st.tuples(
        st.integers(0, 72 * 60),  # minutes the clock moves before the intent
        st.sampled_from(TOPICS),
        st.sampled_from(["now", "now", "10:00", "21:30", "07:45", "02:30"]),
        st.none() | st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True),
        st.none() | st.integers(0, 96),  # deadline in hours after the clock
        st.sampled_from([{}, {"severity": "major"}, {"severity": "minor"}]),
    ),
    min_size=1,
    max_size=12,
)


def _run(f: CustomerFacts, start: datetime, plan) -> list[tuple[datetime, Intent, Decision]]:
    now, out = start, []
    for i, (advance, topic, send_time, channels, deadline_h, data) in enumerate(plan):
        now += timedelta(minutes=advance)
        deadline = None if deadline_h is None else now + timedelta(hours=deadline_h)
        intent = Intent(customer_id=1, topic=topic, template="t", dedupe_key=f"k{i}", send_time=send_time,
                        channels=channels, deadline=deadline, data=data)
        for d in decide_for_customer([intent], f, now, POLICY):
            out.append((now, intent, d))
    return out


def _caps(frequency: str):
    counting = {n for n, t in POLICY.topics.items() if t.counts_toward_caps}
    for rule in POLICY.caps:
        topics = counting if rule.topics == "all" else counting & set(rule.topics)
        yield rule.name, rule.max, rule.window, rule.channel, topics
    if frequency in POLICY.preference_caps:
        yield "preference", 1, POLICY.preference_caps[frequency], "all", counting


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer_facts(), clocks, steps)
def test_decisions_respect_caps_quiet_hours_consent_and_always_say_why(f, start, plan):
    frequency = f.frequency
    decided = _run(f, start, plan)
    sent = [(intent, d) for _, intent, d in decided if d.outcome != "suppress"]

    for now, intent, d in decided:
        assert d.reason_codes and d.reason_text, d
        assert (d.outcome == "send") == (d.send_at <= now) or d.outcome == "suppress"
        if d.outcome == "suppress":
            continue
        topic = POLICY.topics[d.topic]
        assert d.send_at >= now
        assert f.addresses.get(d.channel) and d.channel not in f.suppressed
        assert consent_allows(f.consent, 1, d.channel, d.topic), "opted-out customer contacted"
        if f.do_not_contact:
            assert topic.required and f"bypass:{d.topic}" in d.reason_codes
        if intent.deadline is not None and d.high_touch is None:
            assert d.send_at <= intent.deadline
        if not topic.bypass_quiet_hours:
            local = d.send_at.astimezone(f.zone).time()
            if d.channel in POLICY.quiet_hours:
                w = POLICY.quiet_hours[d.channel]
                assert not in_window(local, (w.start, w.end)), f"quiet hours broken: {d}"
            if f.quiet:
                assert not in_window(local, f.quiet), f"personal quiet hours broken: {d}"

    # Caps: every rolling window that ends at a capped message holds at most `max` capped messages.
    capped = [(d.topic, d.channel, d.send_at) for _, d in sent if not POLICY.topics[d.topic].bypass_caps]
    for name, limit, window, channel, topics in _caps(frequency):
        times = sorted(t for tp, ch, t in capped if tp in topics and channel in ("all", ch))
        for end in times:
            inside = sum(1 for t in times if end - window < t <= end)
            assert inside <= limit, f"cap {name} exceeded: {inside} > {limit} in window ending {end}"


@settings(max_examples=100, deadline=None)
@given(customer_facts(), clocks, st.sampled_from(["10:00", "07:45", "02:30", "23:59"]))
def test_local_send_times_land_on_the_local_clock_when_it_exists(f, now, send_time):
    f.addresses, f.suppressed, f.consent, f.do_not_contact, f.quiet = {"email": "a"}, {}, {}, False, None
    f.preferred_channels = []
    d = decide_for_customer(
        [Intent(customer_id=1, topic="transactional", template="t", dedupe_key="k", send_time=send_time)],
        f, now, POLICY,
    )[0]
    hours, minutes = map(int, send_time.split(":"))
    local = d.send_at.astimezone(f.zone)
    assert d.send_at >= now and d.send_at - now < timedelta(hours=26)
    # The wall clock matches, unless a DST jump skipped that time on that day (then it is later).
    wanted = local.replace(hour=hours, minute=minutes)
    skipped = wanted.astimezone(UTC).astimezone(f.zone) != wanted
    assert (local.hour, local.minute) == (hours, minutes) or skipped


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(customer_facts(), clocks, steps)
def test_the_ledger_written_by_reserve_keeps_the_same_promises(sqlite_url, f, start, plan):
    """The same properties, read back from the ledger after reservations at advancing clocks."""
    from sqlalchemy import delete, select

    from orchestrator.consent import record_consent, suppress_address, update_preferences
    from orchestrator.db import session_scope
    from orchestrator.models import (
        ConsentEvent,
        ContactPreference,
        Customer,
        Message,
        PreferenceEvent,
        Suppression,
    )
    from orchestrator.policy import reserve_chunk

    with session_scope() as s:
        for table in (Message, ConsentEvent, ContactPreference, PreferenceEvent, Suppression, Customer):
            s.execute(delete(table))
        phone = f.addresses.get("sms") or f.addresses.get("phone")
        customer = Customer(external_id="c", email=f.addresses.get("email") and "c@example.com",
                            phone=phone and "+15550001111", x_user_id=f.addresses.get("social") and "42",
                            timezone=f.zone.key, tier=f.tier)
        s.add(customer)
        s.flush()
        cid = customer.id
        for (_, channel, topic), state in f.consent.items():
            record_consent(s, cid, channel, topic, state, "test")
        quiet = {"quiet_start": f"{f.quiet[0]:%H:%M}", "quiet_end": f"{f.quiet[1]:%H:%M}"} if f.quiet else {}
        update_preferences(s, cid, "test", preferred_channels=f.preferred_channels, frequency=f.frequency,
                           do_not_contact=f.do_not_contact, **quiet)
        if "email" in f.suppressed and customer.email:
            suppress_address(s, "email", customer.email, "bounce", "test")
    now = start
    for i, (advance, topic, send_time, channels, _deadline, data) in enumerate(plan):
        now += timedelta(minutes=advance)
        intent = Intent(customer_id=cid, topic=topic, template="t", dedupe_key=f"k{i}", send_time=send_time,
                        channels=channels, data=data)
        reserve_chunk([intent], now=now, policy=POLICY)
    with session_scope() as s:
        rows = list(s.exec(select(Message)).scalars())
    assert sorted({m.dedupe_key for m in rows}) == sorted(f"k{i}" for i in range(len(plan)))
    assert len({(m.dedupe_key, m.channel) for m in rows}) == len(rows)
    consent = {(cid, ch, tp): st for (_, ch, tp), st in f.consent.items()}
    capped = []
    for m in rows:
        assert m.reason_codes and m.reason_text
        if m.status == "suppressed":
            continue
        assert consent_allows(consent, cid, m.channel, m.topic)
        assert not (f.do_not_contact and not POLICY.topics[m.topic].required)
        if m.channel == "email":
            assert "email" not in f.suppressed
        if not POLICY.topics[m.topic].bypass_quiet_hours and f.quiet:
            assert not in_window(m.send_at.astimezone(f.zone).time(), f.quiet)
        if not POLICY.topics[m.topic].bypass_caps:
            capped.append((m.topic, m.channel, m.send_at))
    for name, limit, window, channel, topics in _caps(f.frequency):
        times = sorted(t for tp, ch, t in capped if tp in topics and channel in ("all", ch))
        for end in times:
            assert sum(1 for t in times if end - window < t <= end) <= limit, name
