"""``orchestrator campaign run``: one message to a segment through the contact policy (a Prefect flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.flow_runs import parse_pairs, print_flow_summary, run_flow
from orchestrator.cli.output import console, err_console, fail, print_json, print_progress_table

campaign_app = typer.Typer(help="Campaigns: one message to a segment, within caps, quiet hours and consent.",
                           no_args_is_help=True)


# The facts options, shared with ``plan`` (which checks the same facts).
FactsOption = Annotated[
    list[str] | None, typer.Option("--data", help="A template fact KEY=VALUE (repeatable).")]
FactsFileOption = Annotated[
    Path | None, typer.Option("--data-file", help="YAML or JSON file with the facts.")]
SampleFactsOption = Annotated[
    bool, typer.Option("--sample-data", help="Start from templates/sample_data.yaml.")]


def read_facts(template: str, pairs: list[str] | None, data_file: Path | None,
               sample: bool) -> dict[str, Any]:
    """The template's facts: the sample facts (``--sample-data``), then the file, then ``--data``."""
    import yaml

    data: dict[str, Any] = {}
    if sample:
        from orchestrator.templating.catalog import get_catalog

        data.update((get_catalog().sample_data.get("messages") or {}).get(template) or {})
    if data_file is not None:
        try:
            loaded = yaml.safe_load(data_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            fail(f"cannot read {data_file}: {exc}", 2)
        if not isinstance(loaded, dict):
            fail(f"{data_file} must hold a mapping of facts", 2)
        data.update(loaded)
    data.update(parse_pairs(pairs, "--data"))
    return data


@campaign_app.command("run")
def run(
    name: str = typer.Argument(..., help="Campaign name; a re-run with the same name sends nothing twice."),
    segment: str = typer.Option(..., "--segment", help="Audience segment (segments.yaml, or 'all')."),
    template: str = typer.Option(..., "--template", help="Message template, e.g. spring_sale."),
    topic: str = typer.Option(None, "--topic", help="Policy topic (default: the template's)."),
    tone: str = typer.Option(None, "--tone", help="Tone override (default: the topic's)."),
    send_time: str = typer.Option("now", "--send-time",
                                  help="'now', a local time of day 'HH:MM' (each customer's zone) or ISO."),
    data: FactsOption = None,
    data_file: FactsFileOption = None,
    sample_data: SampleFactsOption = False,
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan only: who would get what; writes nothing."),
    chunk_size: int = typer.Option(1000, "--chunk-size", min=1, help="Customers per task."),
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="An experiment variant, e.g. tone=empathetic or tone=professional,weight=2 "
                          "(repeatable; keys: tone, template, weight, name).")] = None,
    holdout: str = typer.Option("0", "--holdout", help="Percent of the audience held out (sent nothing)."),
    goal: str = typer.Option(None, "--goal", help="Conversion event the campaign aims at, e.g. purchase."),
    attribution_days: int = typer.Option(7, "--attribution-days", min=1,
                                         help="Days after the send a goal event counts for the campaign."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run a campaign: decide, reserve and send, a chunk of customers at a time."""
    from orchestrator.campaign_params import check_campaign
    from orchestrator.experiments import build_experiment, parse_variant_option
    from orchestrator.ledger.campaigns import refuse_if_cancelled

    facts = read_facts(template, data, data_file, sample_data)
    try:  # bad input fails here, before a Prefect run starts
        if not dry_run:
            refuse_if_cancelled(name)
        topic_used = check_campaign(template, topic, facts, send_time, tone)
        variants = [parse_variant_option(text) for text in variant or []]
        experiment = build_experiment(variants, holdout)
        for arm in experiment.variants:
            check_campaign(arm.template or template, topic_used, facts, send_time, arm.tone or tone)
    except ValueError as exc:
        fail(str(exc), 2)
    _warn_without_one_click(template, [arm.template for arm in experiment.variants if arm.template])
    from flows.garbage_collection import loading_for_good

    with loading_for_good():
        from flows.campaign import campaign  # Prefect loads here, after the parameters are known good

    result = run_flow(campaign, name=name, segment=segment, template=template, topic=topic, tone=tone,
                      send_time=send_time, data=facts, dry_run=dry_run, chunk_size=chunk_size,
                      variants=[v.model_dump() for v in variants] or None,
                      holdout=experiment.holdout_percent, goal_event=goal, attribution_days=attribution_days)
    print_json(result) if as_json else print_flow_summary(result, f"Campaign {name}")


@campaign_app.command("cancel")
def cancel(
    name: str = typer.Argument(..., help="The campaign's name."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Cancel a campaign: what has not gone out never will, a run still going stops reserving, and
    the name cannot be run again."""
    from dataclasses import asdict

    from orchestrator.ledger.campaigns import UnknownCampaign, cancel_campaign
    from orchestrator.ledger.summaries import progress

    try:
        done = cancel_campaign(name)
    except UnknownCampaign as exc:
        fail(str(exc), 1)
    if as_json:
        print_json(asdict(done))
        return
    statuses = done.statuses
    gone = progress(statuses)["sent"]
    lines = [f"Campaign {name} {'was already' if done.already_cancelled else 'is'} cancelled: "
             f"{done.cancelled} message(s) that had not gone out now never will "
             f"({statuses.get('cancelled', 0)} cancelled in all).",
             f"{gone} had already been sent."]
    if statuses.get("sending"):
        lines.append(f"{statuses['sending']} were being sent at that moment and may still go out.")
    lines.append(f"Why each customer did or did not hear: `orchestrator report campaign {name}`, "
                 "`orchestrator explain <customer id>`.")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@campaign_app.command("list")
def list_command(
    limit: int = typer.Option(20, "--limit", min=1, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The latest campaigns: where each stands and its messages sent, waiting, suppressed, cancelled."""
    from orchestrator.ledger.campaigns import list_campaigns
    from orchestrator.ledger.summaries import progress

    listed = list_campaigns(limit)
    rows = [{"name": c.name, "status": c.status, "segment": c.segment, "topic": c.topic,
             "template": c.template, "tone": c.tone, "send_time": c.send_time,
             "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat(),
             "messages": entry.statuses, **progress(entry.statuses)}
            for entry in listed for c in (entry.campaign,)]
    if as_json:
        print_json(rows)
        return
    print_progress_table("Campaigns, newest first", rows, ("name", "status"),
                         "orchestrator report campaign <name>")


def _warn_without_one_click(template: str, others: list[str]) -> None:
    from orchestrator.links import one_click_warning
    from orchestrator.templating import message_info

    warning = one_click_warning()
    if warning and any(message_info(t).marketing for t in [template, *others]):
        err_console.print(f"Warning: {warning}", style="yellow", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
