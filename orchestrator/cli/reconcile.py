"""``orchestrator reconcile``: messages a crash left unsure (did the provider get them?)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.output import console, fail, print_json

reconcile_app = typer.Typer(
    help="Messages flagged after a crash between the provider call and the ledger: list and settle.",
    no_args_is_help=True,
)


@reconcile_app.command("list")
def list_flagged(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Messages in `reconcile`: check each at the provider, then `reconcile settle`."""
    from sqlalchemy import select
    from sqlmodel import col

    from orchestrator.db import session_scope
    from orchestrator.models import Customer, Message, MessageStatus

    with session_scope() as session:
        rows = session.execute(
            select(col(Message.id), col(Customer.external_id), col(Message.channel), col(Message.topic),
                   col(Message.provider), col(Message.updated_at), col(Message.last_error))
            .join(Customer, col(Customer.id) == Message.customer_id)
            .where(col(Message.status) == MessageStatus.reconcile).order_by(col(Message.id)).limit(limit)
        ).all()
    items = [{"id": r.id, "customer": r.external_id, "channel": r.channel, "topic": r.topic,
              "provider": r.provider, "flagged_at": r.updated_at.isoformat(), "why": r.last_error or ""}
             for r in rows]
    if as_json:
        print_json(items)
        return
    if not items:
        console.print("No message needs reconciling.")
        return
    table = Table("id", "customer", "channel", "topic", "flagged at (UTC)", "why")
    for item in items:
        table.add_row(str(item["id"]), item["customer"], item["channel"], item["topic"],
                      item["flagged_at"][:16], item["why"])
    console.print(table)
    console.print("Search the provider for each message id (SendGrid custom_args message_id, the "
                  "Twilio status callback's message_id), then settle it.")


@reconcile_app.command("settle")
def settle(
    message_ids: Annotated[list[int], typer.Argument(help="Ledger message ids.")],
    sent: Annotated[bool, typer.Option("--sent/--not-sent",
                                       help="--sent: the provider has it; --not-sent: send it again.")],
    provider_id: Annotated[str | None, typer.Option(help="The provider's message id, with --sent.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Record what the provider said about flagged messages. Ids not in `reconcile` are left alone."""
    from orchestrator.ledger.reconcile import settle_reconcile

    if provider_id and not sent:
        fail("--provider-id goes with --sent", code=2)
    counts = settle_reconcile(message_ids, sent=sent, provider_message_id=provider_id)
    if as_json:
        print_json(counts)
        return
    console.print(f"{counts['sent']} marked sent, {counts['requeued']} queued to go out again, "
                  f"{counts['not_flagged']} not waiting for reconciliation (left as they were).")


def register(app: typer.Typer) -> None:
    app.add_typer(reconcile_app, name="reconcile")
