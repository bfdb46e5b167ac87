"""``orchestrator explain`` and ``orchestrator plan``: why a customer heard from us, and dry runs."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.campaign import FactsFileOption, FactsOption, SampleFactsOption, read_facts
from orchestrator.cli.output import DataTable, console, fail, plain, print_json
from orchestrator.reasons import describe


def _parse_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--at must be an ISO date-time such as 2026-05-01T09:00:00+00:00, got {value!r}", 2)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def explain(
    customer: str = typer.Argument(..., help="The customer's external id (or numeric id)."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many recent decisions to show."),
    campaign: str = typer.Option(None, "--campaign",
                                 help="Only this campaign's decisions; if none, why it missed them."),
    incident: str = typer.Option(None, "--incident",
                                 help="Only this incident's notices; if none, why they missed them."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Recent decisions for a customer (sent, deferred, suppressed) and why."""
    from orchestrator.db import session_scope
    from orchestrator.ledger.campaigns import UnknownCampaign, find_campaign
    from orchestrator.ledger.incidents import UnknownIncident, find_incident
    from orchestrator.policy.explain import UnknownCustomer, explain_customer, find_customer_id
    from orchestrator.policy.explain_reach import Audience, why_not_reached

    if campaign is not None and incident is not None:
        fail("give --campaign or --incident, not both", 2)
    not_reached = None
    try:
        with session_scope() as session:
            audience, origin = None, {}
            if campaign is not None:
                found = find_campaign(session, campaign)
                audience, origin = Audience.of_campaign(found), {"campaign_id": found.id}
            elif incident is not None:
                notified = find_incident(session, incident)
                audience, origin = Audience.of_incident(notified), {"incident_id": notified.id}
            decisions = explain_customer(session, customer, limit=limit, **origin)
            if audience is not None and not decisions:
                not_reached = why_not_reached(session, find_customer_id(session, customer), audience)
    except (UnknownCustomer, UnknownCampaign, UnknownIncident) as exc:
        fail(str(exc))
    if as_json:
        listed = [d.as_dict() for d in decisions]
        about = {"campaign": campaign} if campaign is not None else {"incident": incident}
        print_json(listed if audience is None else {
            **about, "decisions": listed,
            "not_reached": not_reached.as_dict() if not_reached is not None else None})
        return
    if not_reached is not None:
        what = f"Campaign {campaign}" if campaign is not None else f"Incident {incident}'s notices"
        console.print(Text.assemble(plain(what), " did not reach ", plain(customer), ": ",
                                    plain(not_reached.text)))
        return
    if not decisions:
        console.print(Text.assemble("No decisions recorded for customer ", plain(customer), "."))
        return
    table = DataTable(title=plain(f"Recent decisions for {customer}"))
    for column in ("id", "topic", "channel", "status", "send at (UTC)"):
        table.add_column(column, no_wrap=True)
    table.add_column("for", overflow="fold")
    table.add_column("reasons", overflow="fold")
    table.add_column("why", overflow="fold", ratio=1)
    for d in decisions:
        table.add_row(
            str(d.message_id), d.topic, d.channel, d.status, f"{d.send_at:%Y-%m-%d %H:%M}",
            d.belongs_to, "\n".join(d.reason_codes), d.reason_text,
        )
    console.print(table)
    for d in decisions:
        if d.settle_with:
            console.print(Text.assemble((f"Message {d.message_id} needs reconciling", "yellow"),
                                        f" (outcome unknown): {d.settle_with}"))

def plan(
    segment: str = typer.Option(..., "--segment", help="Audience segment name (segments.yaml)."),
    template: str = typer.Option(..., "--template", help="Message template name."),
    topic: str = typer.Option(None, "--topic", help="Policy topic (default: the template's)."),
    tone: str = typer.Option(None, "--tone", help="Tone override (default: the topic's)."),
    at: str = typer.Option(None, "--at", help="Plan as of this ISO date-time (default: now)."),
    send_time: str = typer.Option("now", "--send-time", help="'now', local 'HH:MM' or ISO date-time."),
    data: FactsOption = None,
    data_file: FactsFileOption = None,
    sample_data: SampleFactsOption = False,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Dry run for an audience: per channel, deferred and suppressed, per reason. Writes nothing.

    Template, topic, facts, tone and send time are checked as ``campaign run`` checks them.
    """
    from orchestrator.campaign_params import check_campaign
    from orchestrator.policy.plan import plan_audience

    facts = read_facts(template, data, data_file, sample_data)
    try:
        topic = check_campaign(template, topic, facts, send_time, tone)
        summary = plan_audience(segment, topic, template, _parse_at(at), send_time=send_time)
    except ValueError as exc:  # PolicyError, SendTimeError, SegmentError: bad input, clear message
        fail(str(exc), 2)
    if as_json:
        print_json(summary.as_dict())
        return
    console.print(
        f"Plan for [bold]{segment}[/] / {topic} / {template} as of {summary.at:%Y-%m-%d %H:%M} UTC: "
        f"{summary.customers} customers"
    )
    outcomes = Table(title="Outcomes")
    outcomes.add_column("outcome")
    outcomes.add_column("customers", justify="right")
    for name in ("send", "defer", "suppress"):
        outcomes.add_row(name, str(summary.outcomes.get(name, 0)))
    if summary.high_touch:
        outcomes.add_row("extra phone tasks", str(summary.high_touch))
    channels = Table(title="Channels (send + defer)")
    channels.add_column("channel")
    channels.add_column("customers", justify="right")
    for name, n in summary.channels.most_common():
        channels.add_row(name, str(n))
    reasons = DataTable(title="Reasons")
    reasons.add_column("reason code")
    reasons.add_column("meaning", overflow="fold")
    reasons.add_column("customers", justify="right")
    for name, n in summary.reasons.most_common():
        reasons.add_row(name, describe(name), str(n))
    nobody = "Channels: none (nobody would be sent anything)."
    console.print(outcomes, channels if summary.channels else nobody, reasons)
    if summary.last_send_at is not None:
        from orchestrator.policy.config import load_policy

        whose = ("the rate" if summary.paced_by in load_policy().rates.rules
                 else "the sending adapter's own rate for")  # e.g. Twilio's 1 SMS a second
        console.print(f"At the declared rates the last message sent at once goes out about "
                      f"{summary.last_send_at:%Y-%m-%d %H:%M:%S} UTC (paced by {whose} "
                      f"{summary.paced_by!r}, pace:{summary.paced_by}).")
    for channel, n in sorted(summary.quiet_hours_reached.items()):
        if n:
            console.print(f"Up to {n} of the {channel} messages sent at once may meet the customer's quiet "
                          f"hours before their turn at that rate: those wait until they end "
                          f"(quiet_hours:{channel}).")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
    app.command("plan")(plan)
