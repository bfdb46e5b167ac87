"""``orchestrator templates list|lint|preview``: the message catalog, the tone guard, previews and proofs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.markup import escape

from orchestrator.cli.output import console, database_errors, fail, print_json

if TYPE_CHECKING:
    from orchestrator.models import Customer
    from orchestrator.templating.render import Rendered

templates_app = typer.Typer(help="Tone templates: list messages, lint every tone and channel, preview one.",
                            no_args_is_help=True)


@templates_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every message with its topic, tones, channels and locales."""
    from orchestrator.templating import TemplateProblem, list_messages, message_info

    try:
        infos = [message_info(name) for name in list_messages()]
    except TemplateProblem as exc:
        fail(str(exc))
    if as_json:
        print_json([{"message": i.name, "topic": i.topic, "marketing": i.marketing,
                     "facts": i.required_variables, "default_tone": i.default_tone, "tones": i.tones,
                     "channels": i.variants, "locales": i.locales} for i in infos])
        return
    for i in infos:
        kind = "marketing" if i.marketing else f"topic {i.topic}"
        parts = [f"tones {', '.join(i.tones)}", f"channels {', '.join(i.variants)}",
                 f"locales {', '.join(i.locales)}", f"facts {', '.join(i.required_variables)}"]
        console.print(f"[bold]{i.name}[/] ({kind}): {'; '.join(parts)}", highlight=False, soft_wrap=True)


@templates_app.command("lint")
def lint_command(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Render every message x tone x channel x locale with sample data and check the tone rules.

    Exits 1 if anything fails; each finding names template, tone, channel, rule and the text.
    """
    from orchestrator.templating import TemplateProblem
    from orchestrator.templating.lint import lint_templates

    try:
        report = lint_templates()
    except TemplateProblem as exc:
        fail(str(exc))
    if as_json:
        print_json(report.as_dict())
    else:
        for finding in report.findings:
            console.print(f"[red]FAIL[/] {escape(finding.describe())}", highlight=False)
        verdict = "[green]ok[/]" if report.ok else f"[red]{len(report.findings)} problem(s)[/]"
        console.print(f"Tone guard: {report.rendered} renderings checked, {verdict}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _customer_by_external_id(external_id: str) -> Customer:
    from sqlmodel import select

    from orchestrator.db import session_scope
    from orchestrator.models import Customer

    with session_scope() as session:
        customer = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
    if customer is None:
        fail(f"no customer with external id {external_id!r}")
    return customer


def _read_data_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot read facts from {path}: {exc}")
    if not isinstance(data, dict):
        fail(f"{path}: expected a mapping of fact names to values")
    return data


@templates_app.command("preview")
def preview_command(
    message: str = typer.Argument(..., help="Message name, e.g. outage_notice."),
    tone: str = typer.Option(None, "--tone", help="Tone (default: the message's default tone)."),
    channel: str = typer.Option("email", "--channel", help="email, sms, social or phone."),
    kind: str = typer.Option(None, "--kind", help="For social: post or dm."),
    customer_id: str = typer.Option(None, "--customer", help="External id of a customer in the database."),
    locale: str = typer.Option(None, "--locale", help="Locale (default: the customer's, else the default)."),
    data_file: Annotated[Path | None, typer.Option(
        "--data", help="YAML/JSON facts overriding the sample data.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the email HTML (default: the cwd).")] = None,
    send_to: Annotated[str | None, typer.Option(
        "--send-to", help="Also send it, marked as a test, to this address (yours) through the channel's "
                          "provider.")] = None,
) -> None:
    """Print a rendered message with its length figures; for email also write an HTML file. With
    --send-to, also send a proof to that address: outside the ledger and caps, never to a suppressed
    address, an email's subject marked [TEST]."""
    from orchestrator.settings import get_settings
    from orchestrator.templating import TemplateProblem, build_context, message_info, render
    from orchestrator.templating.catalog import get_catalog

    try:
        info = message_info(message)
        sample = get_catalog().sample_data
        stored = _customer_by_external_id(customer_id) if customer_id else None
        customer = stored or sample.get("customer") or {}
        facts = dict((sample.get("messages") or {}).get(message) or {})
        if data_file is not None:
            facts.update(_read_data_file(data_file))
        wanted_locale = locale or (stored.locale if stored else None) or get_settings().default_locale
        if send_to is not None:  # the proof's links must not act on the customer it is rendered for
            from orchestrator.dispatch.proof import proof_customer

            customer = proof_customer(customer)
        context = build_context(customer, facts, topic=info.topic)
        rendered = render(message, tone=tone, channel=channel, kind=kind, context=context,
                          locale=wanted_locale)
    except TemplateProblem as exc:
        fail(str(exc))
    variant = f"{channel}:{rendered.kind}" if rendered.kind else channel
    console.print(f"[bold]{message}[/] · tone {rendered.tone} · {variant} · {rendered.locale}",
                  highlight=False)
    if tone and rendered.tone != tone:
        meant = get_catalog().rules.resolve_tone(tone)
        note = f"{tone} is another name for {meant}" if meant != tone else f"no {tone} variant"
        if meant != rendered.tone:
            note += f"; fell back to the default tone {rendered.tone}"
        console.print(f"[yellow]{note.capitalize()}.[/]", highlight=False)
    if rendered.locale != wanted_locale:
        console.print(f"[yellow]No {wanted_locale} translation: fell back to {rendered.locale}.[/]")
    if rendered.subject is not None:
        console.print(f"[bold]Subject:[/] {escape(rendered.subject)}", highlight=False)
    console.rule()
    console.print(escape(rendered.text), highlight=False, soft_wrap=True)
    console.rule()
    console.print(rendered.metrics.describe(), highlight=False)
    if rendered.html is not None:
        path = out or Path.cwd() / f"preview-{message}-{rendered.tone}-{rendered.locale}.html"
        path.write_text(rendered.html, encoding="utf-8")
        console.print(f"HTML written to {path}", highlight=False, soft_wrap=True)
    if send_to is not None:
        _send_proof(rendered, info.topic, send_to)


def _send_proof(rendered: Rendered, topic: str, raw_address: str) -> None:
    from channels.base import ConfigurationError
    from orchestrator.contact_points import normalise_address
    from orchestrator.dispatch.proof import ProofRefused, send_proof
    from orchestrator.privacy import mask_address, redact_text
    from orchestrator.settings import get_settings

    channel = rendered.channel
    try:
        to = normalise_address(channel, raw_address, get_settings().default_phone_region)
    except ValueError as exc:
        fail(f"--send-to: {exc}", 2)
    try:
        with database_errors():
            result = send_proof(rendered, to, topic=topic)
    except ProofRefused as exc:
        fail(f"no proof sent: {exc}", 1)
    except ConfigurationError as exc:
        fail(f"no proof sent: the {channel} channel is not set up: {redact_text(str(exc))}", 1)
    shown = mask_address(channel, to)
    if not result.ok:
        fail(f"the provider ({result.provider}) did not take the proof to {shown}: "
             f"{redact_text(str(result.error))}", 1)
    console.print(f"Proof sent to {shown} through {result.provider}, provider id "
                  f"{result.provider_message_id}.", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app, name="templates")
