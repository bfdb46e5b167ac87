"""`orchestrator templates preview` and `templates list`."""

import json
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.models import Customer

runner = CliRunner()


def _flat(output: str) -> str:
    return " ".join(output.split())


def test_preview_email_prints_the_message_and_writes_html_to_the_cwd(tmp_path):
    result = runner.invoke(app, ["templates", "preview", "outage_notice", "--tone", "empathetic",
                                 "--channel", "email"])
    assert result.exit_code == 0, result.output
    out = _flat(result.output)
    assert "Subject: We're sorry: Card payments are failing for some customers" in out
    assert "What is affected: card payments in the checkout and the mobile app." in out
    assert "email subject: 57 chars, max 78" in out
    html_file = tmp_path / "preview-outage_notice-empathetic-en.html"
    assert f"HTML written to {html_file}" in out
    assert html_file.read_text().startswith("<!DOCTYPE html>")


def test_preview_sms_shows_segments_and_fallbacks():
    result = runner.invoke(app, ["templates", "preview", "outage_notice", "--tone", "appreciative",
                                 "--channel", "sms", "--locale", "es-MX"])
    assert result.exit_code == 0, result.output
    out = _flat(result.output)
    assert "tone empathetic" in out and "fell back to the default tone empathetic" in out
    assert "No es-MX translation: fell back to es." in out
    assert "lo sentimos" in out
    assert "sms: 2 segments (GSM-7, 280 chars), max 3" in out
    assert not list(Path.cwd().glob("*.html"))


def test_preview_for_a_customer_from_the_database(sqlite_url, tmp_path):
    with session_scope() as session:
        session.add(Customer(external_id="C-42", name="Lucía Fernández", locale="es", tier="premium",
                             customer_since=date(2020, 5, 1), email="lucia@example.org"))
    out_file = tmp_path / "mail" / "preview.html"
    out_file.parent.mkdir()
    result = runner.invoke(app, ["templates", "preview", "security_alert", "--channel", "email",
                                 "--customer", "C-42", "--out", str(out_file)])
    assert result.exit_code == 0, result.output
    out = _flat(result.output)
    assert "security_alert · tone urgent · email · es" in out
    assert "Hola, Lucía:" in out and "lucia@example.org" not in out
    assert "Hola, Lucía:" in out_file.read_text()

    missing = runner.invoke(app, ["templates", "preview", "security_alert", "--customer", "nobody"])
    assert missing.exit_code == 1 and "no customer with external id 'nobody'" in _flat(missing.output)


def test_preview_takes_facts_from_a_file_and_reports_problems(tmp_path):
    facts = tmp_path / "facts.yaml"
    facts.write_text("offer: 30% off 🌷 every plan for the whole season, for every team and every seat\n")
    result = runner.invoke(app, ["templates", "preview", "spring_sale", "--channel", "sms",
                                 "--data", str(facts)])
    assert result.exit_code == 1
    assert "sms: 3 segments (UCS-2" in _flat(result.output) and "max 2" in result.output

    unknown = runner.invoke(app, ["templates", "preview", "no_such_message"])
    assert unknown.exit_code == 1 and "unknown message 'no_such_message'" in _flat(unknown.output)


def test_list_describes_every_message():
    result = runner.invoke(app, ["templates", "list", "--json"])
    assert result.exit_code == 0
    listed = {entry["message"]: entry for entry in json.loads(result.output)}
    assert listed["outage_notice"]["locales"] == ["en", "es"]
    assert "social:post" in listed["spring_sale"]["channels"] and listed["spring_sale"]["marketing"]
    assert listed["anniversary"]["facts"] == ["gift"]
