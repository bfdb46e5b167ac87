"""``orchestrator demo``: the whole journey on this machine, no credentials and no server needed.

It imports the sample customers into SQLite, runs a campaign and an outage notice (investigating,
then resolved) through the real Prefect flows (an ephemeral Prefect server starts by itself),
sends through the local outbox, and explains who got what, through which channel, and why not.
Run it again and dedupe shows: nothing is sent twice. ``--fresh`` starts over.
"""

from __future__ import annotations

import os
import time
from typing import Any

import typer
from rich.table import Table

from orchestrator.cli.flow_runs import print_flow_summary
from orchestrator.cli.local_prefect import start_local_server
from orchestrator.cli.output import console, fail

CAMPAIGN = "spring-sale-demo"
CAMPAIGN_TEMPLATE = "spring_sale"
INCIDENT = "INC-DEMO-1"
AFFECTED = {"region": "eu-west"}
OUTAGE_TITLE = "Card payments are failing for some customers"


def _quiet_prefect() -> None:
    """Readable output: Prefect says only what matters (set before Prefect is imported)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "ERROR")


def _run_flows() -> list[tuple[str, dict[str, Any]]]:
    from flows.garbage_collection import loading_for_good
    from orchestrator.templating.catalog import get_catalog

    with loading_for_good():
        from flows.campaign import campaign
        from flows.outage import outage_notice

    facts = (get_catalog().sample_data.get("messages") or {}).get(CAMPAIGN_TEMPLATE) or {}
    runs = [("Campaign: spring sale to every customer, sent now",
             campaign(name=CAMPAIGN, segment="all", template=CAMPAIGN_TEMPLATE, data=facts))]
    outage: dict[str, Any] = {"incident_id": INCIDENT, "severity": "major", "affected": AFFECTED,
                              "title": OUTAGE_TITLE}
    runs.append((f"Outage {INCIDENT} (region eu-west): investigating",
                 outage_notice(status="investigating", summary="Our engineers are rolling out a fix",
                               **outage)))
    runs.append((f"Outage {INCIDENT}: resolved",
                 outage_notice(status="resolved", summary="a faulty configuration change, now rolled back",
                               **outage)))
    return runs


def demo(
    database_url: str = typer.Option(None, "--database-url",
                                     help="Default: ORCH_DATABASE_URL, else ./orchestrator.db."),
    fresh: bool = typer.Option(False, "--fresh/--keep",
                               help="Recreate the SQLite database and outbox first (default: keep)."),
) -> None:
    """Run a campaign and an outage notice end to end and explain what happened."""
    _quiet_prefect()
    from orchestrator import demo as groundwork
    from orchestrator.privacy import redact_url
    from orchestrator.settings import get_settings

    started = time.monotonic()
    url = database_url or get_settings().database_url
    groundwork.use_demo_settings(url)
    local = start_local_server()  # the server's start (seconds) goes beside the customers' import
    if fresh:
        try:
            removed = groundwork.start_over(url)
        except ValueError as exc:
            fail(str(exc), 2)
        console.print(f"Starting over: removed {len(removed)} file(s).")
    report = groundwork.prepare(url)
    console.print(f"Database {redact_url(url)}: {report.imported} customer(s) imported, "
                  f"{report.updated} updated, {report.unchanged} unchanged "
                  f"from {groundwork.SAMPLE_CUSTOMERS.name}.")
    console.print("Running the flows (a local Prefect server starts meanwhile, ~10 s)...")
    with local.use():
        runs = _run_flows()
    for title, result in runs:
        print_flow_summary(result, title)

    console.rule("[bold]A few customers, and why")
    table = Table(show_lines=True)
    for column in ("customer", "outcome", "channel", "address"):
        table.add_column(column, overflow="fold", ratio=1)
    table.add_column("why", overflow="fold", ratio=3)
    keys = ["campaign:" + CAMPAIGN, *(f"incident:{INCIDENT}:{s}" for s in ("investigating", "resolved"))]
    for label, ex in groundwork.examples(keys):
        outcome = label if label == ex.status else f"{label} ({ex.status})"
        table.add_row(ex.customer, outcome, ex.channel, ex.address, ex.why)
    console.print(table)
    console.print("Ask about anyone: [bold]orchestrator explain <customer id>[/]. What waits (quiet hours, "
                  "send times) goes out when it falls due: [bold]orchestrator dispatch-due[/].")

    new = sum(n for _, r in runs for s, n in r.get("reserved", {}).items() if s != "duplicate")
    if not new:
        console.print("\n[yellow]Second run: every message was already in the ledger, so nothing was "
                      "decided or sent twice.[/] Use --fresh to start over.")
    outbox = get_settings().outbox_dir.resolve()
    console.print(f"\nWhat was 'sent' is in the local outbox: {outbox}/<channel>-<date>.log "
                  "(and the outbox_entry table); calls for agents: [bold]orchestrator tasks list[/].")
    console.print(f"Done in {time.monotonic() - started:.0f} s.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
