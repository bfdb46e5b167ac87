"""Pure decisions: given an intent, the customer's facts and the clock, where and when (or why not).

No database here: ``reserve`` loads the facts in bulk, calls ``decide`` and writes the result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from channels.channel_set import channel_names, channel_spec
from orchestrator.consent import consent_allows
from orchestrator.policy.caps import Cap, CapHistory, blocking_cap, cap_allows, next_free_slot, window_words
from orchestrator.policy.config import ALL, Policy, Topic, WhenCapped
from orchestrator.policy.intents import CustomerFacts, Decision, HistoryEntry, Intent, Outcome
from orchestrator.policy.quiet_hours import PERSONAL, QuietHours, quiet_windows
from orchestrator.policy.quiet_hours import window_words as quiet_window_words
from orchestrator.policy.timing import (
    Window,
    after_quiet_hours,
    base_send_time,
    in_window,
    parse_send_time,
)
from orchestrator.reasons import (
    BYPASS,
    CAP,
    DEADLINE,
    DEFER,
    DO_NOT_CONTACT,
    HIGH_TOUCH,
    HOLDOUT,
    NO_ADDRESS,
    NO_OPT_IN,
    OPTED_OUT,
    PREFERENCE,
    QUIET_HOURS,
    ROUTE,
    SEND_TIME,
    SUPPRESSED,
    UNENGAGED,
    fallback_code,
)


class _Index:
    """Per-policy lookups computed once: caps per (topic, channel), counting topics, quiet windows."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.counting = frozenset(n for n, t in policy.topics.items() if t.counts_toward_caps)
        self.caps: dict[tuple[str, str], list[Cap]] = {}
        channels = channel_names()
        for topic in policy.topics:
            for channel in channels:
                self.caps[(topic, channel)] = [Cap.from_rule(r) for r in policy.caps_for(topic, channel)]
        # keyed by CustomerFacts.frequency: "any" (no personal cap) finds nothing
        self.personal: dict[str, Cap] = {
            freq: Cap(f"preference-{freq}", 1, window, ALL, None)
            for freq, window in policy.preference_caps.items()
        }
        self.quiet = QuietHours.of(policy).by_channel
        self.opt_in = frozenset(ch for ch in channels if channel_spec(ch).opt_in_required)


_INDEXES: dict[int, tuple[Policy, _Index]] = {}


def _index(policy: Policy) -> _Index:
    hit = _INDEXES.get(id(policy))
    if hit is None or hit[0] is not policy:
        hit = (policy, _Index(policy))
        _INDEXES[id(policy)] = hit
    return hit[1]


class _Reasons:
    def __init__(self) -> None:
        self.codes: list[str] = []
        self.text: list[str] = []

    def add(self, code: str, text: str) -> None:
        if code not in self.codes:
            self.codes.append(code)
            self.text.append(text)

    def joined(self) -> str:
        return " ".join(self.text)


def _no_consent(facts: CustomerFacts, channel: str, topic: str, index: _Index) -> tuple[str, str]:
    if channel in index.opt_in and consent_allows(facts.consent, facts.id, channel, topic):
        return NO_OPT_IN, f"{channel} needs the customer's opt-in, and none is on record."
    return OPTED_OUT, f"Opted out of {topic} on {channel}."


def _fmt_local(t: datetime, facts: CustomerFacts) -> str:
    return f"{t.astimezone(facts.zone):%Y-%m-%d %H:%M} {facts.zone.key}"


def channel_order(intent: Intent, topic: Topic, facts: CustomerFacts) -> list[str]:
    """The topic's channels (or the intent's override), the customer's preferred ones first."""
    channels = list(intent.channels) if intent.channels else list(topic.channels)
    preferred = [ch for ch in facts.preferred_channels if ch in channels]
    if preferred:
        channels = preferred + [ch for ch in channels if ch not in preferred]
    return channels


def _caps_with_history(index: _Index, topic: str, channel: str, facts: CustomerFacts) -> list[CapHistory]:
    if not facts.history:  # every cap allows at least one message: nothing to check
        return []
    caps = list(index.caps.get((topic, channel), ()))
    personal = index.personal.get(facts.frequency)
    if personal is not None and topic in index.counting:
        caps.append(personal)
    return [(cap, sorted(h.send_at for h in facts.history if cap.counts(h, index.counting))) for cap in caps]


def _note_quiet_hours_bypass(
    reasons: _Reasons, topic: str, quiet: list[tuple[str, Window]], at: datetime, facts: CustomerFacts
) -> None:
    """A topic that ignores quiet hours says so on the row when it goes out inside them."""
    local = at.astimezone(facts.zone).time()
    for name, window in quiet:
        if in_window(local, window):
            reasons.add(
                BYPASS.code("quiet_hours"),
                f"Inside {quiet_window_words(name, window)}, but {topic} notices go out at any hour.",
            )
            return


@lru_cache(maxsize=256)
def _send_time_reason(send_time: str) -> tuple[str, str] | None:
    spec = parse_send_time(send_time)
    if spec is None:
        return None
    if isinstance(spec, datetime):
        return SEND_TIME.code(spec.isoformat()), f"Scheduled for {spec.isoformat()} (fixed time)."
    return SEND_TIME.code(f"{spec:%H:%M}"), f"Scheduled for {spec:%H:%M} (customer's local time)."


def decide(intent: Intent, facts: CustomerFacts, now: datetime, policy: Policy) -> list[Decision]:
    """The decision for one intent: one ledger row, plus one per matching high-touch rule.

    Pure: reads ``facts`` (including the customer's recent history), writes nothing.
    """
    index = _index(policy)
    topic = policy.topic(intent.topic)
    tone = intent.tone or topic.tone
    reasons = _Reasons()
    channels = channel_order(intent, topic, facts)
    if facts.preferred_channels and channels and channels[0] in facts.preferred_channels:
        reasons.add(PREFERENCE.code(channels[0]), f"The customer prefers {channels[0]}.")
    not_before = max(now, intent.earliest) if intent.earliest else now
    base = base_send_time(intent.send_time, facts.zone, not_before)
    scheduled = _send_time_reason(intent.send_time)
    if scheduled is not None:
        reasons.add(*scheduled)

    def suppress(channel: str | None = None) -> list[Decision]:
        return [
            _decision(intent, topic, "suppress", channel or channels[0], tone, base, reasons, now=now)
        ]

    if intent.holdout_of is not None:  # kept from the message to measure what it changes
        reasons.add(HOLDOUT.code(intent.holdout_of),
                    f"In the holdout group of campaign {intent.holdout_of}: not sent, to measure its effect.")
        return suppress()

    if facts.do_not_contact:
        if not topic.required:
            reasons.add(DO_NOT_CONTACT.code(), "The customer asked not to be contacted.")
            return suppress()
        reasons.add(
            BYPASS.code(intent.topic),
            f"The customer asked not to be contacted, but {intent.topic} notices are required.",
        )

    chosen: tuple[str, datetime] | None = None
    for channel in channels:
        if not facts.addresses.get(channel):
            reasons.add(NO_ADDRESS.code(channel), f"No {channel} address on file.")
            continue
        suppressed = facts.suppressed.get(channel)
        if suppressed:
            reasons.add(SUPPRESSED.code(suppressed), f"The {channel} address is suppressed ({suppressed}).")
            continue
        if channel in facts.unengaged and intent.topic in policy.sunset[channel].topics:
            span = window_words(policy.sunset[channel].window)
            reasons.add(UNENGAGED.code(channel),
                        f"{facts.unengaged[channel]} {channel} messages in the last {span}, none opened, "
                        f"clicked or answered: no more {intent.topic} there (sunset).")
            continue
        if not consent_allows(facts.consent, facts.id, channel, intent.topic, channel in index.opt_in):
            reasons.add(*_no_consent(facts, channel, intent.topic, index))
            continue
        at = base
        quiet = quiet_windows(index.quiet, channel, facts.quiet)
        if topic.bypass_quiet_hours:
            _note_quiet_hours_bypass(reasons, intent.topic, quiet, base, facts)
            quiet = []
        windows = [w for _, w in quiet]
        if windows:
            after_quiet = after_quiet_hours(base, windows, facts.zone)
            if after_quiet is None:
                reasons.add(QUIET_HOURS.code("always"), f"Quiet hours cover the whole day on {channel}.")
                continue
            at = after_quiet
            if at != base:
                local = base.astimezone(facts.zone).time()
                for name, window in quiet:
                    if not in_window(local, window):
                        continue
                    reasons.add(
                        QUIET_HOURS.code(name),
                        f"Quiet hours {'for ' + name if name != PERSONAL else '(personal)'} "
                        f"{window[0]:%H:%M}-{window[1]:%H:%M} local: waits until {_fmt_local(at, facts)}.",
                    )
        caps = _caps_with_history(index, intent.topic, channel, facts)
        blocking = blocking_cap(caps, at) if caps else None
        if blocking is not None:
            if topic.bypass_caps:
                for cap, times in caps:  # every cap that would have held it, not only the first
                    if not cap_allows(times, at, cap):
                        reasons.add(
                            BYPASS.code(CAP.code(cap.name)),
                            f"Cap {cap.name} ({cap.describe()}) is reached, "
                            f"but {intent.topic} notices bypass frequency caps.",
                        )
            else:
                reasons.add(
                    CAP.code(blocking.name), f"Cap {blocking.name} ({blocking.describe()}) is reached."
                )
                if topic.when_capped == WhenCapped.drop:
                    return suppress(channel)
                if topic.when_capped == WhenCapped.fallback:
                    continue
                free_slot = next_free_slot(caps, at, windows, facts.zone)
                if free_slot is None:
                    continue
                at = free_slot
                reasons.add(
                    DEFER.code(blocking.name), f"Deferred to the next free slot, {_fmt_local(at, facts)}."
                )
        if intent.deadline is not None and at > intent.deadline:
            reasons.add(DEADLINE.code(channel), f"On {channel} it could not go out before the deadline.")
            continue
        chosen = (channel, at)
        break

    if chosen is None:
        return suppress()
    channel, at = chosen
    if channel != channels[0]:
        reasons.add(fallback_code(channels[0], channel), f"Fell back from {channels[0]} to {channel}.")
    reasons.add(ROUTE.code(channel), f"Goes out by {channel}.")
    outcome: Outcome = "send" if at <= now else "defer"
    decisions = [_decision(intent, topic, outcome, channel, tone, at, reasons, now=now)]
    decisions.extend(_high_touch(intent, topic, facts, now, policy, index, channel, base))
    return decisions


def _high_touch(
    intent: Intent, topic: Topic, facts: CustomerFacts, now: datetime, policy: Policy, index: _Index,
    main_channel: str, base: datetime,
) -> list[Decision]:
    out = []
    severity = (intent.data or {}).get("severity")
    for rule in policy.high_touch:
        if intent.topic not in rule.topics or facts.tier not in rule.tiers:
            continue
        if rule.severities is not None and severity not in rule.severities:
            continue
        if rule.channel == main_channel:
            continue
        reasons = _Reasons()
        reasons.add(
            HIGH_TOUCH.code(rule.name),
            f"High-touch rule {rule.name}: {facts.tier} customer, {severity or intent.topic}; "
            f"also a {rule.channel} contact.",
        )
        tone = rule.tone or intent.tone or topic.tone
        outcome: Outcome = "suppress"
        at: datetime | None = base
        if not facts.addresses.get(rule.channel):
            reasons.add(NO_ADDRESS.code(rule.channel), f"No {rule.channel} address on file.")
        elif facts.suppressed.get(rule.channel):
            reason = facts.suppressed[rule.channel]
            reasons.add(SUPPRESSED.code(reason), f"The {rule.channel} address is suppressed ({reason}).")
        elif not consent_allows(
            facts.consent, facts.id, rule.channel, intent.topic, rule.channel in index.opt_in
        ):
            reasons.add(*_no_consent(facts, rule.channel, intent.topic, index))
        else:
            quiet = quiet_windows(index.quiet, rule.channel, facts.quiet)
            if topic.bypass_quiet_hours:
                _note_quiet_hours_bypass(reasons, intent.topic, quiet, base, facts)
                quiet = []
            windows = [w for _, w in quiet]
            at = after_quiet_hours(base, windows, facts.zone) if windows else base
            if at is None:
                reasons.add(QUIET_HOURS.code("always"), f"Quiet hours cover the whole day on {rule.channel}.")
            else:
                if at != base:
                    reasons.add(
                        QUIET_HOURS.code(rule.channel),
                        f"Waits for the end of quiet hours, {_fmt_local(at, facts)}.",
                    )
                outcome = "send" if at <= now else "defer"
                reasons.add(ROUTE.code(rule.channel), f"Goes out by {rule.channel}.")
        d = _decision(intent, topic, outcome, rule.channel, tone, at or base, reasons, now=now)
        d.high_touch = rule.name
        out.append(d)
    return out


def _decision(
    intent: Intent, topic: Topic, outcome: Outcome, channel: str, tone: str, at: datetime, reasons: _Reasons,
    now: datetime,
) -> Decision:
    return Decision(
        customer_id=intent.customer_id,
        outcome=outcome,
        channel=channel,
        tone=tone,
        send_at=at.astimezone(UTC) if outcome != "suppress" else now,
        reason_codes=list(reasons.codes),
        reason_text=reasons.joined(),
        topic=intent.topic,
        dedupe_key=intent.dedupe_key,
        priority=topic.priority,
    )


def decide_for_customer(
    intents: list[Intent], facts: CustomerFacts, now: datetime, policy: Policy
) -> list[Decision]:
    """Several intents for one customer, highest priority first; each sees the slots the previous took."""
    out: list[Decision] = []
    for intent in sorted(intents, key=lambda i: -policy.topic(i.topic).priority):
        for d in decide(intent, facts, now, policy):
            out.append(d)
            if d.outcome != "suppress":
                facts.history.append(HistoryEntry(d.topic, d.channel, d.send_at))
    return out
