"""Compose: the claimed messages as their customers will see them, or the reason they cannot go out.

Customers, consent and suppressions are loaded in bulk; each message is rendered for its
channel, tone and locale. A message that cannot go out (its campaign cancelled, past its deadline,
no address, opted out, suppressed address, render error) is settled here without a provider call;
one that would go out inside the customer's quiet hours waits for their end.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from channels.base import OutboundMessage
from orchestrator.consent import consent_allows, current_consent, opt_in_required, suppressed_addresses
from orchestrator.contact_points import channel_columns, reach_of
from orchestrator.db import member_of, session_scope
from orchestrator.ledger.campaigns import CANCELLED_BY_OPERATOR, cancelled_campaigns
from orchestrator.ledger.changes import LedgerChange, held_for_quiet_hours, settled
from orchestrator.ledger.queue import ClaimedMessage
from orchestrator.links import unsubscribe_url
from orchestrator.models import ContactPreference, Customer, MessageStatus, table_of
from orchestrator.policy.config import load_policy
from orchestrator.policy.quiet_hours import QuietHold, QuietHours, personal_window
from orchestrator.policy.quiet_hours import window_words as quiet_window_words
from orchestrator.policy.timing import Window, zone_for
from orchestrator.reasons import (
    DO_NOT_CONTACT,
    EXPIRED,
    NO_ADDRESS,
    OPTED_OUT,
    QUIET_HOURS,
    RENDER_ERROR,
    SUPPRESSED,
)

CUSTOMER = table_of(Customer)


@dataclass
class ReadyMessage:
    """A claimed message rendered for its channel, with the address it goes to."""

    message: ClaimedMessage
    outbound: OutboundMessage
    address: str


@dataclass
class Composed:
    ready: list[ReadyMessage]
    settled: list[LedgerChange]  # decided here: no provider call


def compose(messages: Mapping[int, ClaimedMessage], now: datetime, required_topics: Collection[str],
            url: str | None = None, quiet_hours: QuietHours | None = None) -> Composed:
    """Checks each message against what changed since the decision and against the customer's quiet
    hours now, then renders the rest.

    ``required_topics`` still reach a customer who asked for no contact after the decision;
    ``quiet_hours``: the policy's (loaded when not given).
    """
    quiet_hours = quiet_hours or QuietHours.of(load_policy())
    customer_ids = sorted({m.customer_id for m in messages.values()})
    with session_scope(url) as session:
        found = session.execute(
            select(*_composing_columns()).where(member_of(session, CUSTOMER.c.id, customer_ids)))
        customers: dict[int, Any] = {c.id: c for c in found}
        channels = {m.channel for m in messages.values()}
        reach = reach_of(session, customers.values(), channels)
        consent = current_consent(session, customer_ids)
        do_not_contact: set[int] = set()
        personal_quiet: dict[int, Window] = {}
        p = table_of(ContactPreference).c
        for cid, no_contact, quiet_start, quiet_end in session.execute(
                select(p.customer_id, p.do_not_contact, p.quiet_start, p.quiet_end).where(
                    member_of(session, p.customer_id, customer_ids))):
            if no_contact:
                do_not_contact.add(cid)
            if (window := personal_window(quiet_start, quiet_end)) is not None:
                personal_quiet[cid] = window
        address_of: dict[int, str | None] = {}
        by_channel: dict[str, set[str]] = {}
        for mid, m in messages.items():
            customer = customers.get(m.customer_id)
            address = address_of[mid] = reach.addresses[m.customer_id].get(m.channel) if customer else None
            if address:
                by_channel.setdefault(m.channel, set()).add(address)
        blocked = {ch: suppressed_addresses(session, ch, addrs) for ch, addrs in by_channel.items()}
        stopped = cancelled_campaigns(session, {m.campaign_id for m in messages.values() if m.campaign_id})
    opt_in = {ch: opt_in_required(ch) for ch in channels}  # asked once per batch, not per message
    out = Composed([], [])
    renderable: list[tuple[ClaimedMessage, Any, str]] = []
    for mid, m in messages.items():
        customer = customers.get(m.customer_id)
        address = address_of[mid]
        outcome: LedgerChange
        if m.campaign_id in stopped:  # e.g. deferred by a provider's "later", then cancelled
            outcome = settled(m, MessageStatus.cancelled, CANCELLED_BY_OPERATOR, "the campaign was cancelled")
        elif m.deadline is not None and m.deadline < now:
            outcome = settled(m, MessageStatus.failed, EXPIRED.code("deadline"),
                              f"deadline {m.deadline:%Y-%m-%d %H:%M} UTC passed")
        elif customer is None or not address:
            outcome = settled(m, MessageStatus.failed, NO_ADDRESS.code(m.channel), "no address on file")
        elif not consent_allows(consent, customer.id, m.channel, m.topic, opt_in[m.channel]):
            outcome = settled(m, MessageStatus.suppressed, OPTED_OUT,
                              f"opted out of {m.topic} on {m.channel} since the decision")
        elif customer.id in do_not_contact and m.topic not in required_topics:
            outcome = settled(m, MessageStatus.suppressed, DO_NOT_CONTACT.code(),
                              "asked not to be contacted since the decision")
        elif address in blocked.get(m.channel, set()):
            outcome = settled(m, MessageStatus.suppressed, SUPPRESSED.code(m.channel),
                              "address is on the suppression list")
        elif (m.channel in quiet_hours.by_channel or customer.id in personal_quiet) and (
                hold := quiet_hours.hold(m.topic, m.channel, personal_quiet.get(customer.id),
                                         zone_for(customer.timezone), now)) is not None:
            outcome = _held(m, hold, zone_for(customer.timezone), now)
        else:
            renderable.append((m, customer, address))
            continue
        out.settled.append(outcome)
    for result in render_messages(renderable, now, reach.last_inbound):
        if isinstance(result, ReadyMessage):
            out.ready.append(result)
        else:
            out.settled.append(result)
    return out


def _held(m: ClaimedMessage, hold: QuietHold, zone: ZoneInfo, now: datetime) -> LedgerChange:
    """A message that would go out inside the customer's quiet hours: it waits for their end, or
    fails if that is past its deadline (or never comes)."""
    inside = f"inside {quiet_window_words(hold.name, hold.window)}"
    if hold.until is None:
        return settled(m, MessageStatus.suppressed, QUIET_HOURS.code("always"),
                       f"due {inside}, which cover the whole day")
    until = f"{hold.until.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"
    if m.deadline is not None and hold.until > m.deadline:
        return settled(m, MessageStatus.failed, EXPIRED.code("deadline"),
                       f"due {inside}, which end ({until}) after its deadline")
    return held_for_quiet_hours(
        m, QUIET_HOURS.code(hold.name), hold.until,
        f"When it was due ({now.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}) it was {inside}: "
        f"waits until {until}.")


def _composing_columns() -> list[Any]:
    """The customer columns composing reads (templates' fields and addresses): not the whole row,
    whose JSON attributes would be decoded for every message."""
    from orchestrator.templating.context import CUSTOMER_FIELDS

    names = dict.fromkeys(("id", *CUSTOMER_FIELDS, *(c for c in channel_columns().values() if c)))
    return [CUSTOMER.c[name] for name in names]


def render_messages(pending: list[tuple[ClaimedMessage, Any, str]], now: datetime,
                    inbound: Mapping[tuple[int, str], datetime] | None = None
                    ) -> list[ReadyMessage | LedgerChange]:
    """The messages as their customers will see them, merged where the templates allow (see
    ``templating.merge``); a template problem fails the message (never a hole sent).

    ``pending``: (message, customer row, address) triples; ``inbound``: when each (customer,
    conversational channel) last wrote to us, for channels with a reply window.
    """
    inbound = inbound or {}
    from orchestrator.templating import TemplateProblem, build_context, message_info
    from orchestrator.templating.context import brand
    from orchestrator.templating.merge import Item, render_many

    results: list[ReadyMessage | LedgerChange] = []
    renderable, items = [], []
    brand_info = brand()
    is_marketing = cache(lambda template: bool(message_info(template).marketing))
    for m, customer, address in pending:
        try:
            context = build_context(customer, m.data or {}, topic=m.topic, message_id=m.id,
                                    brand_info=brand_info)
        except TemplateProblem as exc:  # e.g. a customer_since that is not a date
            results.append(settled(m, MessageStatus.failed, RENDER_ERROR.code(), str(exc)))
            continue
        renderable.append((m, customer, address))
        items.append(Item(m.template, m.tone, m.channel, m.locale or customer.locale or "en",
                          "dm" if m.channel == "social" else None, context))
    outcomes = render_many(items)
    for (m, customer, address), item, outcome in zip(renderable, items, outcomes, strict=True):
        if outcome.rendered is None:
            results.append(settled(m, MessageStatus.failed, RENDER_ERROR.code(), str(outcome.problem)))
            continue
        rendered = outcome.rendered
        marketing = is_marketing(m.template)
        due_in = int((m.deadline - now).total_seconds()) if m.deadline is not None else None
        unsubscribe = None
        if marketing:  # an email's context has already signed this link
            links = item.context.get("links") or {}
            unsubscribe = links.get("unsubscribe_url") if m.channel == "email" else None
            unsubscribe = unsubscribe or unsubscribe_url(customer.id, m.topic, m.channel, message_id=m.id)
        outbound = OutboundMessage(
            message_id=m.id,
            channel=m.channel,
            to=str(customer.id) if m.channel == "phone" else address,
            body=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            topic=m.topic,
            marketing=marketing,
            unsubscribe_url=unsubscribe,
            customer_id=customer.id,
            priority=m.priority,
            due_in_seconds=due_in,
            categories=[m.topic, m.template],
            meta={"campaign_id": m.campaign_id, "incident_id": m.incident_id},
            merge=outcome.merge,
            template=m.template,
            locale=rendered.locale,
            data=dict(m.data or {}),
            last_inbound_at=inbound.get((m.customer_id, m.channel)),
        )
        results.append(ReadyMessage(m, outbound, address))
    return results
