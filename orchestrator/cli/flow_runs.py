"""What the commands that run flows share: ``key=value`` options, and the run's summary for people.

The summary is the dict the campaign, outage and lifecycle flows return.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from orchestrator.cli.output import console, fail
from orchestrator.reasons import describe

STATUS_COLUMNS = ("sent", "delivered", "planned", "sending", "deferred", "suppressed", "failed", "cancelled",
                  "reconcile")


def parse_pairs(values: list[str] | None, option: str) -> dict[str, Any]:
    """``["code=SPRING20", "minutes=2"]`` -> ``{"code": "SPRING20", "minutes": 2}`` (JSON values parsed)."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{option} takes KEY=VALUE, got {item!r}", 2)
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def run_flow(flow: Any, **parameters: Any) -> dict[str, Any]:
    """Runs a flow in this process; bad input (any ValueError) becomes a clean error, exit code 2;
    a database that stayed unavailable one line, exit code 1."""
    from orchestrator.db import DatabaseUnavailable, brief_cause, is_unavailable

    try:
        return flow(**parameters)
    except ValueError as exc:
        fail(str(exc), 2)
    except Exception as exc:
        if not (isinstance(exc, DatabaseUnavailable) or is_unavailable(exc)):
            raise
        why = str(exc) if isinstance(exc, DatabaseUnavailable) else brief_cause(exc)
        fail(f"{why}. Run the same command again when the database is back: what went out is not sent "
             "again, and `orchestrator reconcile list` shows anything left in doubt.")


def explain_reasons(reason: str) -> str:
    """``"a + b"`` (a headline of several codes) in words."""
    return "; ".join(describe(code.strip()) for code in reason.split(" + ") if code.strip())


def print_flow_summary(result: dict[str, Any], title: str) -> None:
    """What the run did this time, where its messages stand per channel, and why some did not go."""
    console.rule(f"[bold]{title}")
    if result.get("dry_run"):
        _print_plan(result)
        return
    reserved = result.get("reserved", {})
    new = {k: v for k, v in reserved.items() if k != "duplicate"}
    dispatched = {k: v for k, v in result.get("dispatched", {}).items() if v}
    console.print(f"Audience: {result.get('audience', result.get('customers', 0))} customer(s).")
    if reserved and not new:
        console.print("[yellow]Nothing new: every customer already had this message in the ledger "
                      "(dedupe), so nothing was sent twice.[/]")
    else:
        decided = ", ".join(f"{n} {s}" for s, n in sorted(new.items())) or "nothing"
        known = f" ({reserved['duplicate']} already in the ledger)" if reserved.get("duplicate") else ""
        console.print(f"This run decided: {decided}{known}")
    console.print("Dispatched now: " + (", ".join(f"{n} {s}" for s, n in dispatched.items()) or "nothing"))
    if result.get("fallbacks"):
        console.print("Fell back to another channel: "
                      + ", ".join(f"{n} {s}" for s, n in sorted(result["fallbacks"].items())))
    if result.get("status") == "resolved" and result.get("first_update") == "resolved":
        console.print("No earlier update of this incident was sent, so its resolution reaches no customer: "
                      "it goes to those told of an earlier update.")
    if "cancelled" in result and result.get("status") == "resolved":
        console.print(f"Earlier notices cancelled before they went out: {result['cancelled']}")
        if result.get("calls_closed") or result.get("calls_rewritten"):
            console.print(f"Agents' calls about it: {result.get('calls_closed', 0)} closed, "
                          f"{result.get('calls_rewritten', 0)} claimed ones told it is resolved")
    post = result.get("post")
    if post:
        outcome = (f"posted ({post.get('provider')}, id {post.get('post_id')})" if post.get("posted")
                   else f"not posted ({post.get('reason')})")
        console.print(f"Public social post: {outcome}")
    ledger = result.get("ledger", {})
    channels: dict[str, dict[str, int]] = ledger.get("channels", {})
    if channels:
        used = [s for s in STATUS_COLUMNS if any(s in counts for counts in channels.values())]
        console.print("[bold]Messages per channel[/] (the ledger, this run and earlier ones)")
        table = Table()
        table.add_column("channel")
        for status in used:
            table.add_column(status, justify="right")
        for channel, counts in sorted(channels.items()):
            table.add_row(channel, *(str(counts.get(s, 0)) for s in used))
        console.print(table)
    _print_reconcile_callout(result.get("reconcile_ids") or [], channels)
    reasons: dict[str, dict[str, int]] = ledger.get("reasons", {})
    if reasons:
        console.print("[bold]Not sent (yet), and why[/]")
        table = Table()
        table.add_column("status")
        table.add_column("messages", justify="right")
        table.add_column("why", overflow="fold")
        for status, by_reason in reasons.items():
            for reason, n in sorted(by_reason.items(), key=lambda item: -item[1]):
                table.add_row(status, str(n), explain_reasons(reason))
        console.print(table)


def _print_reconcile_callout(flagged_now: list[int], channels: dict[str, dict[str, int]]) -> None:
    """Messages whose outcome is unknown never hide in a table: the command that settles them."""
    flagged = max(len(flagged_now), sum(counts.get("reconcile", 0) for counts in channels.values()))
    if not flagged:
        return
    from orchestrator.policy.explain import reconcile_hint

    console.print(Text.assemble((f"{flagged} message(s) need reconciling", "bold yellow"),
                                " (outcome unknown: the provider may have them): ",
                                reconcile_hint(flagged_now)))


def _print_plan(result: dict[str, Any]) -> None:
    console.print(f"Dry run (nothing written) for {result.get('customers', 0)} customer(s).")
    table = Table(title="Would be", title_justify="left")
    table.add_column("outcome")
    table.add_column("customers", justify="right")
    for outcome, n in result.get("outcomes", {}).items():
        table.add_row(outcome, str(n))
    for channel, n in result.get("channels", {}).items():
        table.add_row(f"via {channel}", str(n))
    console.print(table)
    reasons = result.get("reasons", {})
    if reasons:
        table = Table(title="Reasons", title_justify="left")
        table.add_column("reason")
        table.add_column("customers", justify="right")
        for reason, n in reasons.items():
            table.add_row(f"{reason} ({describe(reason)})", str(n))
        console.print(table)
