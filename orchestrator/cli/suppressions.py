"""``orchestrator suppressions``: the addresses no message may go to, why, and changing the list by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.output import DataTable, console, database_errors, fail, plain, print_json

suppressions_app = typer.Typer(
    help="The suppression list: addresses no message goes to (bounces, spam reports, dead numbers, STOP), "
         "why, and adding or lifting one by hand.",
    no_args_is_help=True)

CHANNEL = typer.Argument(..., help="The channel: email, sms, social...")
ADDRESS = typer.Argument(..., help="The address as the channel writes it (an email, a phone number...).")
NOTE = typer.Option(..., "--note", help="Why, in a few words (kept in the address's history).")
FILE = typer.Argument(..., help="A CSV file with a header: address (or email, or phone), and optionally "
                                "channel and reason (kept as a note).")


def _channel(name: str) -> str:
    from orchestrator.policy.config import known_channel

    try:
        return known_channel(name)
    except ValueError as exc:
        fail(str(exc), 2)


def _address(channel: str, raw: str, *, strict: bool) -> str:
    """The address in the form the list stores. ``strict`` (adding): one the channel cannot read is an
    error; otherwise it is looked up as typed (an invalid number may be exactly what was suppressed)."""
    from orchestrator.contact_points import normalise_address
    from orchestrator.settings import get_settings

    try:
        return normalise_address(channel, raw, get_settings().default_phone_region)
    except ValueError as exc:
        if strict or not raw.strip():
            fail(f"{channel} address: {exc}", 2)
        return raw.strip()


def _say(text: str) -> None:
    console.print(plain(text), highlight=False, soft_wrap=True)


@suppressions_app.command("list")
def list_command(
    channel: str | None = typer.Option(None, help="Only this channel's."),
    reason: str | None = typer.Option(None, help="Only this reason's: bounce, spamreport, unsubscribed..."),
    limit: int = typer.Option(50, "--limit", min=1, help="How many, newest first."),
    reveal: bool = typer.Option(False, "--reveal", help="Show the addresses unmasked."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The addresses on the list, newest first: channel, address (masked), why, who put it there, since
    when; with how many there are per channel and reason."""
    from orchestrator.audience.suppressions import counts_by_reason, listed, words_for
    from orchestrator.db import read_scope
    from orchestrator.privacy import mask_address

    channel = _channel(channel) if channel is not None else None
    with database_errors(), read_scope() as session:
        total, rows = listed(session, channel=channel, reason=reason, limit=limit)
        counts = counts_by_reason(session)
    shown = [r.as_dict(r.address if reveal else mask_address(r.channel, r.address)) for r in rows]
    if as_json:
        per_reason = [{"channel": c, "reason": r, "addresses": n} for (c, r), n in sorted(counts.items())]
        print_json({"total": total, "addresses": shown, "per_reason": per_reason})
        return
    if not total:
        _say("No address is suppressed" + (" for that filter." if channel or reason else "."))
        return
    summary = DataTable(title="Suppressed addresses per channel and reason")
    for column in ("channel", "reason", "addresses", "meaning"):
        summary.add_column(column)
    for (c, r), n in sorted(counts.items()):
        summary.add_row(c, r, str(n), words_for(r))
    console.print(summary)
    table = DataTable(title=f"Newest {len(shown)} of {total}" + (" (filtered)" if channel or reason else ""))
    for column in ("since (UTC)", "channel", "address", "reason", "source"):
        table.add_column(column)
    for item in shown:
        table.add_row(f"{item['at']:%Y-%m-%d %H:%M}", item["channel"], item["address"], item["reason"],
                      item["source"])
    console.print(table)


@suppressions_app.command("show")
def show_command(
    channel: str = CHANNEL,
    address: str = ADDRESS,
    reveal: bool = typer.Option(False, "--reveal", help="Show the address unmasked."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Whether an address is suppressed and why, the customers it reaches, and its history: each time it
    was added to the list or lifted, by whom and why."""
    from orchestrator.audience.suppressions import current, history, holders
    from orchestrator.db import read_scope
    from orchestrator.privacy import mask_address

    channel = _channel(channel)
    address = _address(channel, address, strict=False)
    with database_errors(), read_scope() as session:
        row = current(session, channel, address)
        address = row.address if row is not None else address  # as the list spells it
        events = history(session, channel, address)
        customers = holders(session, channel, address)
    shown = address if reveal else mask_address(channel, address)
    data: dict[str, Any] = {
        "channel": channel, "address": shown, "suppressed": row.as_dict(shown) if row else None,
        "customers": customers, "history": [e.as_dict(shown) for e in events],
    }
    if as_json:
        print_json(data)
        return
    if row is None:
        _say(f"{channel} {shown} is not suppressed: messages may go to it.")
    else:
        _say(f"{channel} {shown} is suppressed since {row.at:%Y-%m-%d %H:%M} UTC: {row.words} ({row.reason}, "
             f"from {row.source}). No message goes to it.")
    _say("Customers with this address: " + (", ".join(customers) if customers else "none"))
    if events:
        table = DataTable(title="History")
        for column in ("when (UTC)", "what", "reason", "by", "note"):
            table.add_column(column, overflow="fold")
        for e in events:
            table.add_row(f"{e.at:%Y-%m-%d %H:%M}", e.action or "", e.reason, e.source, plain(e.note or ""))
        console.print(table)


@suppressions_app.command("add")
def add_command(channel: str = CHANNEL, address: str = ADDRESS, note: str = NOTE) -> None:
    """Suppress an address by hand (a legal hold, a role address, a request made by phone): no message
    goes to it, whoever holds it, until it is lifted."""
    from orchestrator.audience.suppressions import add
    from orchestrator.db import session_scope
    from orchestrator.privacy import mask_address

    channel = _channel(channel)
    address = _address(channel, address, strict=True)
    try:
        with database_errors(), session_scope() as session:
            row, added = add(session, channel, address, note)
    except ValueError as exc:
        fail(str(exc), 2)
    shown = mask_address(channel, address)
    if added:
        _say(f"Suppressed {channel} {shown}: no message goes to it until it is lifted.")
    else:
        _say(f"{channel} {shown} was already suppressed since {row.at:%Y-%m-%d %H:%M} UTC: {row.words} "
             f"({row.reason}). Nothing changed.")


@suppressions_app.command("lift")
def lift_command(
    channel: str = CHANNEL,
    address: str = ADDRESS,
    note: str = NOTE,
    customer_asked: bool = typer.Option(
        False, "--customer-asked", help="The customer asked to hear from us again (lifts a spam report)."),
) -> None:
    """Take an address off the list (the customer fixed their mailbox, a number was reassigned): later
    messages may go to it. Messages already suppressed are not sent after all. A STOP is lifted only by
    the customer's START."""
    from orchestrator.audience.suppressions import CannotLift, NotSuppressed, lift, provider_keeps_its_own
    from orchestrator.db import session_scope
    from orchestrator.privacy import mask_address

    channel = _channel(channel)
    address = _address(channel, address, strict=False)
    shown = mask_address(channel, address)
    try:
        with database_errors(), session_scope() as session:
            lifted = lift(session, channel, address, note, customer_asked=customer_asked)
    except NotSuppressed as exc:
        fail(f"{channel} {shown}: {exc}", 1)
    except CannotLift as exc:
        fail(f"{channel} {shown} stays suppressed: {exc}", 1)
    except ValueError as exc:
        fail(str(exc), 2)
    _say(f"Lifted {channel} {mask_address(channel, lifted.address)} (suppressed since "
         f"{lifted.at:%Y-%m-%d %H:%M} UTC: {lifted.words}): later messages may go to it.")
    warning = provider_keeps_its_own(channel, lifted.reason)
    if warning:
        _say(warning)


@suppressions_app.command("import")
def import_command(
    path: Path = FILE,
    channel: str | None = typer.Option(None, help="The channel of every line without a channel column."),
    reason: str = typer.Option("imported", help="Why they are suppressed: imported, bounce, spamreport, "
                                                "unsubscribed (only the customer's START lifts those)..."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Import a suppression list (from another provider, a legal list): each address checked by its
    channel's rules, lines that fail reported by number, addresses already on the list left as they are."""
    from orchestrator.audience.suppression_import import SuppressionImportError, import_suppressions
    from orchestrator.settings import get_settings

    try:
        with database_errors():
            done = import_suppressions(path, channel=channel, reason=reason,
                                       region=get_settings().default_phone_region)
    except (SuppressionImportError, ValueError) as exc:
        fail(f"nothing imported: {exc}", 2)
    if as_json:
        print_json(done.as_dict())
    else:
        _say(f"Read {done.read} line(s): {done.added} address(es) added to the suppression list, "
             f"{done.already} already on it, {len(done.rejected)} rejected.")
        for rejected in done.rejected[:20]:
            _say(f"  line {rejected.line}: {rejected.reason}")
        if len(done.rejected) > 20:
            _say(f"  ... and {len(done.rejected) - 20} more (--json lists them all)")
    if done.rejected:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(suppressions_app, name="suppressions")
