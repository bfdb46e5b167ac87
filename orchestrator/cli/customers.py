"""``orchestrator customers import|show|list``.

Exit codes: 0 done (rejected rows, if any, are listed); 1 nothing could be imported, or no
such customer, or the database is not ready; 2 the input as a whole is unusable (unreadable
file, unknown format, no external_id column, unknown segment).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orchestrator.cli.output import (
    DataTable,
    console,
    database_errors,
    err_console,
    fail,
    json_text,
    plain,
    print_json,
)
from orchestrator.privacy import mask_address

if TYPE_CHECKING:  # every command's start imports this module: the database layer loads late
    from sqlmodel import Session

    from orchestrator.models import Customer

customers_app = typer.Typer(help="Import, inspect and list customers.", no_args_is_help=True)

SHOWN_REJECTIONS = 50  # the terminal table; --json lists every rejected row


def customer_row(customer: Customer, *, reveal: bool = False) -> dict[str, Any]:
    """A customer for display: contact details masked unless ``reveal``."""
    return {
        "external_id": customer.external_id,
        "name": customer.name,
        # Masked as the channels' own address kinds mask them, like every other address.
        "email": customer.email if reveal else mask_address("email", customer.email),
        "phone": customer.phone if reveal else mask_address("sms", customer.phone),
        "x_handle": customer.x_handle,
        "timezone": customer.timezone,
        "locale": customer.locale,
        "tier": customer.tier,
        "customer_since": customer.customer_since.isoformat() if customer.customer_since else None,
    }


def listed_rows(session: Session, customers: Sequence[Customer]) -> list[dict[str, Any]]:
    """Customers for a list, each with its address on every installed channel, masked (plug-in
    channels' contact points in one query for the whole page)."""
    from orchestrator.contact_points import addresses_of

    reach = addresses_of(session, customers)
    return [{**customer_row(c), "addresses": {ch: mask_address(ch, address)
                                              for ch, address in reach[c.id].items() if address}}
            for c in customers if c.id is not None]


LISTED_COLUMNS = ("external_id", "name", "addresses", "timezone", "locale", "tier", "customer_since")


def customers_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = DataTable(title=plain(title) if title else None)
    for column in LISTED_COLUMNS:
        table.add_column(column, overflow="fold" if column == "addresses" else "ellipsis")
    for row in rows:
        # One line per channel: "email: a***@e***", then "sms: +***01", in the channels' order.
        addresses = "\n".join(f"{channel}: {address}" for channel, address in row["addresses"].items())
        table.add_row(*(addresses if c == "addresses" else str(row[c] or "") for c in LISTED_COLUMNS))
    return table


def _estimated_rows(path: Path, fmt: str) -> int | None:
    try:
        with open(path, "rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None
    return max(lines - (1 if fmt == "csv" else 0), 1)


def _run_with_progress(path: Path, fmt: str, run: Callable[[Callable[[int], None] | None], Any]) -> Any:
    columns = (TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("import", total=_estimated_rows(path, fmt))
        result = run(lambda n: bar.advance(task, n))
        bar.update(task, completed=bar.tasks[0].total)
    return result


def _print_report(report: Any) -> None:
    summary = Table(title="Customer import", show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("imported (new)", str(report.imported))
    summary.add_row("updated", str(report.updated))
    summary.add_row("unchanged", str(report.unchanged))
    summary.add_row("rejected", str(len(report.rejected)), style="red" if report.rejected else None)
    console.print(summary)
    for warning in report.warnings:
        err_console.print(Text.assemble(("Warning:", "yellow"), " ", plain(warning)), highlight=False)
    if report.rejected:
        table = DataTable(title="Rejected rows")
        table.add_column("line", justify="right")
        table.add_column("field")
        table.add_column("reason")
        for row in report.rejected[:SHOWN_REJECTIONS]:
            table.add_row(str(row.line), row.field, row.reason)
        console.print(table)
        hidden = len(report.rejected) - SHOWN_REJECTIONS
        if hidden > 0:
            console.print(f"... and {hidden} more rejected rows (--json lists them all)")


@customers_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A CSV (header line first) or JSON Lines file.")],
    fmt: str = typer.Option(None, "--format", help="csv or jsonl (default: from the file extension)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (no progress bar)."),
) -> None:
    """Import customers: new external_ids are added, known ones updated; bad rows are reported."""
    from orchestrator.customer_import import CustomerImportError, detect_format, import_customers

    try:
        fmt = detect_format(file, fmt)
        with database_errors():
            if as_json:
                report = import_customers(file, fmt=fmt)
            else:
                report = _run_with_progress(
                    file, fmt, lambda progress: import_customers(file, fmt=fmt, progress=progress)
                )
    except CustomerImportError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if report.imported + report.updated + report.unchanged == 0:
        fail("nothing was imported" + (": every row was rejected" if report.rejected else ""), 1)


def preference_words(prefs: dict[str, Any]) -> str:
    """A customer's own preferences as people read them."""
    own_quiet = prefs["quiet_start"] and prefs["quiet_end"]
    quiet = f"{prefs['quiet_start']}-{prefs['quiet_end']} local" if own_quiet else "none of their own"
    return "; ".join((f"preferred channels: {', '.join(prefs['preferred_channels']) or 'none'}",
                      f"frequency: {prefs['frequency']}", f"quiet hours: {quiet}",
                      f"do not contact: {'yes' if prefs['do_not_contact'] else 'no'}"))


@customers_app.command("show")
def show_command(
    external_id: str = typer.Argument(..., help="The customer's external_id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    reveal: bool = typer.Option(False, "--reveal", help="Show email, phone and addresses unmasked."),
) -> None:
    """A customer's profile, addresses per channel, consent in force, preferences and last 10
    ledger rows."""
    from sqlmodel import col, select

    from orchestrator.audience.erasure import erased_at
    from orchestrator.audience.suppressions import current
    from orchestrator.consent import current_consent
    from orchestrator.contact_points import addresses_of, point_rows
    from orchestrator.customer_import.columns import PREFERENCE_COLUMNS
    from orchestrator.db import session_scope
    from orchestrator.models import ContactPreference, Customer, Message

    with database_errors(), session_scope() as session:
        customer = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
        if customer is None:
            fail(f"no customer with external_id {external_id!r}", 1)
        customer_id = customer.id
        assert customer_id is not None  # a stored row
        consent = current_consent(session, [customer_id])
        preference = session.get(ContactPreference, customer_id)
        latest = select(Message).where(Message.customer_id == customer_id).order_by(col(Message.id).desc())
        messages = session.exec(latest.limit(10)).all()
        addresses = addresses_of(session, [customer])[customer_id]
        points = {p.channel: p for p in point_rows(session, customer_id)}
        suppressed = {channel: current(session, channel, address) for channel, address in addresses.items()
                      if address}
        erased = erased_at(session, customer_id)
    data: dict[str, Any] = {  # what --json prints
        "erased_at": erased.isoformat() if erased else None,
        "profile": {**customer_row(customer, reveal=reveal), "x_user_id": customer.x_user_id},
        "attributes": customer.attributes,
        "contact_points": [
            {"channel": channel, "address": address if reveal else mask_address(channel, address),
             "verified": points[channel].verified if channel in points else None,
             "source": points[channel].source if channel in points else "profile",
             "suppressed": stop.as_dict() if (stop := suppressed[channel]) else None}
            for channel, address in addresses.items() if address
        ],
        "consent": [
            {"channel": channel, "topic": topic, "state": state}
            for (_, channel, topic), state in sorted(consent.items())
        ],
        "preferences": {k: getattr(preference, k) for k in PREFERENCE_COLUMNS} if preference else None,
        "messages": [
            {"id": m.id, "created_at": m.created_at, "channel": m.channel, "topic": m.topic,
             "template": m.template, "status": m.status, "send_at": m.send_at,
             "reason_codes": m.reason_codes, "reason_text": m.reason_text}
            for m in messages
        ],
    }  # fmt: skip
    if as_json:
        print_json(data)
        return
    profile = DataTable(title=plain(f"Customer {customer.external_id}"), show_header=False)
    profile.add_column("field")
    profile.add_column("value")
    attributes = {f"attr.{k}": v for k, v in customer.attributes.items()}
    for key, value in {**data["profile"], **attributes}.items():
        profile.add_row(key, "" if value is None else str(value))
    if erased is not None:
        console.print(f"Personal data erased on {erased:%Y-%m-%d %H:%M} UTC at the customer's request.",
                      markup=False, highlight=False)
    console.print(profile)
    reach = DataTable(title="Addresses per channel")
    for column in ("channel", "address", "verified", "source", "suppressed"):
        reach.add_column(column)
    for point in data["contact_points"]:
        verified = "" if point["verified"] is None else ("yes" if point["verified"] else "no")
        stop = point["suppressed"]
        reach.add_row(point["channel"], point["address"], verified, point["source"],
                      f"{stop['reason']} since {stop['at']:%Y-%m-%d}" if stop else "")
    console.print(reach if data["contact_points"] else "No address on any channel.")
    consent_table = DataTable(title="Consent in force")
    for column in ("channel", "topic", "state"):
        consent_table.add_column(column)
    for entry in data["consent"]:
        consent_table.add_row(entry["channel"], entry["topic"], entry["state"])
    console.print(consent_table if data["consent"] else "No consent records (allowed by default).")
    prefs = data["preferences"]
    shown = preference_words(prefs) if prefs else "none recorded (defaults)"
    console.print(Text.assemble("Preferences: ", plain(shown)), highlight=False)
    ledger = DataTable(title="Last 10 ledger rows")
    for column in ("id", "created", "channel", "topic", "status", "send at", "reasons"):
        ledger.add_column(column)
    for m in data["messages"]:
        reasons = ", ".join(m["reason_codes"]) + (f" ({m['reason_text']})" if m["reason_text"] else "")
        ledger.add_row(
            str(m["id"]), f"{m['created_at']:%Y-%m-%d %H:%M}", m["channel"], m["topic"], m["status"],
            f"{m['send_at']:%Y-%m-%d %H:%M}", reasons,
        )  # fmt: skip
    console.print(ledger if data["messages"] else "No messages yet.")

@customers_app.command("list")
def list_command(
    segment: str = typer.Option("all", "--segment", help="Only customers in this segment."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many customers to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Customers with their address on every channel (masked), optionally those of one segment."""
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.models import Customer
    from orchestrator.segments import SegmentError, compile_filter, count_audience, get_segment

    try:
        chosen = get_segment(segment)
        condition = compile_filter(chosen.filter, segment=chosen.name)
    except SegmentError as exc:
        fail(str(exc), 2)
    with database_errors(), session_scope() as session:
        total = count_audience(session, chosen)
        found = session.exec(select(Customer).where(condition).order_by(col(Customer.id)).limit(limit)).all()
        rows = listed_rows(session, found)
    if as_json:
        print_json({"segment": chosen.name, "count": total, "customers": rows})
        return
    console.print(customers_table(rows, title=f"Segment {chosen.name}: {len(rows)} of {total}"))


@customers_app.command("export")
def export_command(
    external_id: str = typer.Argument(..., help="The customer's external_id."),
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the JSON here (readable by you only), not to the terminal.")] = None,
) -> None:
    """Everything held about a customer, unmasked, as one JSON document: for their request to see
    their data or take it elsewhere."""
    import os

    from orchestrator.audience.export import export_customer
    from orchestrator.audience.personal_data import UnknownCustomer

    try:
        with database_errors():
            document = export_customer(external_id)
    except UnknownCustomer as exc:
        fail(str(exc), 1)
    if out is None:
        print_json(document)
        return
    text = json_text(document)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", 2)
    console.print(f"Wrote the data held about customer {external_id} to {out}.", markup=False,
                  highlight=False)


@customers_app.command("erase")
def erase_command(
    external_id: str = typer.Argument(..., help="The customer's external_id."),
    yes: bool = typer.Option(False, "--yes", help="Erase without asking (scripts, a request queue)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Erase a customer's personal data on their request: profile, addresses, their own words, the
    facts of their messages. What they were sent, when and why stays, naming no one; they are opted
    out of everything, so nothing more goes to them."""
    from orchestrator.audience.erasure import erase_customer
    from orchestrator.audience.personal_data import UnknownCustomer

    question = f"Erase the personal data of customer {external_id}? This cannot be undone"
    if not yes and not typer.confirm(question):
        fail("nothing was erased", 1)
    try:
        with database_errors():
            done = erase_customer(external_id)
    except UnknownCustomer as exc:
        fail(str(exc), 1)
    if as_json:
        print_json(done.as_dict())
        return
    lines = [f"Customer {external_id}: personal data erased. They are opted out of everything and marked "
             "do-not-contact. An import that still holds them would bring their profile back (not their "
             "consent): erase them at the source too.",
             f"Messages: {done.messages} kept without their facts ({done.cancelled} that had not gone out "
             f"cancelled); addresses on other channels: {done.contact_points} deleted; their own words: "
             f"{done.feedback}; calls: {done.phone_tasks}; provider reports: {done.delivery_events}; "
             f"outbox copies: {done.outbox_entries} deleted.",
             "Providers keep their own copies of what was sent (SendGrid, Twilio, X): erase there too."]
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")
