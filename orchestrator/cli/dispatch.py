"""``orchestrator dispatch-due``: send what has fallen due, in this process (the ``dispatch-due`` flow).

In production a Prefect worker runs the ``dispatch-due`` deployment every minute. Without one (the
demo's database, a small installation driven by cron) this command does the same once: flags sends
stuck in ``sending``, then sends the planned messages and the deferred ones whose time has come.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.flow_runs import run_flow
from orchestrator.cli.output import console, fail, print_json


def dispatch_due(
    max_messages: int = typer.Option(50_000, "--max", min=0, help="Send at most this many now."),
    channel: Annotated[list[str] | None, typer.Option(
        "--channel", help="Only this channel's messages (repeatable).")] = None,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Send what has fallen due (deferred past quiet hours, a cap slot, a send time, a retry), once."""
    from orchestrator.policy.config import known_channel

    try:  # a typo fails before Prefect loads
        channels = [known_channel(name) for name in channel or []] or None
    except ValueError as exc:
        fail(str(exc), 2)
    from flows.garbage_collection import loading_for_good

    with loading_for_good():
        from flows.dispatch_due import DispatchConfigurationError, dispatch_due_flow
    from orchestrator.ledger.queue import waiting_later

    try:
        result = run_flow(dispatch_due_flow, max_messages=max_messages, channels=channels)
    except DispatchConfigurationError as exc:
        fail(str(exc), 1)
    waiting, first = waiting_later(channels=channels)
    result |= {"waiting_later": waiting, "next_due_at": first.isoformat() if first else None}
    if as_json:
        print_json(result)
        return
    done = ", ".join(f"{result[k]} {k}" for k in ("sent", "deferred", "failed", "suppressed") if result[k])
    lines = [f"Sent what was due: {done or 'nothing was due'}."]
    if result["deferred"]:
        lines.append("Deferred again: waiting for a send rate, a provider's retry or the end of the "
                     "customer's quiet hours (orchestrator explain).")
    if result["reconcile"]:
        lines.append(f"{result['reconcile']} message(s) need reconciling: orchestrator reconcile list")
    if waiting and first is not None:
        lines.append(f"{waiting} message(s) wait for a later time; the first falls due at "
                     f"{first:%Y-%m-%d %H:%M} UTC. Run this again then (or let the dispatch-due "
                     "deployment do it every minute).")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("dispatch-due")(dispatch_due)
