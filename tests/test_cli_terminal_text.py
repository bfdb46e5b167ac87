"""Customer text in a terminal: shown as text, never obeyed as escape sequences or Rich markup.

A name, an attribute, an SMS reply quoted in a task's reason or a ledger row may hold anything a
form or a file let through: screen clears, window-title and hyperlink escapes, bidi overrides,
Rich markup. The CLI prints them as visible symbols and literal brackets.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.cli.output import console, err_console, neutralise
from orchestrator.consent import suppress_address
from orchestrator.db import session_scope
from orchestrator.models import Customer, CustomerFeedback, Message, MessageStatus, utcnow
from orchestrator.phone_tasks import TaskRequest, open_tasks

HOSTILE = "Ada\x1b[2J\x1b]0;owned\x07 [red]x[/] [link=https://evil.example]y[/link] \u202egnp.exe\x9b31m"
OBEYED = ("\x1b", "\x07", "\u202e", "\x9b")


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch):
    """Wide enough that no table cell is cut, whatever width an earlier test left the consoles at."""
    for each in (console, err_console):
        monkeypatch.setattr(each, "width", 500)


@pytest.fixture
def hostile_customer(sqlite_url) -> int:
    with session_scope() as s:
        customer = Customer(external_id="c-hostile", name=HOSTILE, phone="+14155550123",
                            email="\x1b[2Jada@example.com", attributes={"note": HOSTILE})
        s.add(customer)
        s.flush()
        s.add(Message(dedupe_key="k", customer_id=customer.id, topic="support", channel="sms",
                      template="complaint_acknowledgement", status=MessageStatus.suppressed.value,
                      reason_codes=["feedback:reply"], reason_text=f"Customer replied: {HOSTILE}",
                      send_at=utcnow()))
        open_tasks(s, [TaskRequest(customer_id=customer.id, topic="support", reason=f"SMS reply: {HOSTILE}",
                                   script=f"Call {HOSTILE} back.")])
        s.add(CustomerFeedback(customer_id=customer.id, channel="sms", body=HOSTILE, source="sms_reply"))
        suppress_address(s, "email", customer.email, "manual", "operator", note=HOSTILE)
        return customer.id


@pytest.mark.parametrize("command", [
    ["customers", "show", "c-hostile", "--reveal"],
    ["customers", "show", "c-hostile"],
    ["tasks", "list"],
    ["tasks", "claim", "1", "--agent", "dana\x1b[31m"],
    ["explain", "c-hostile"],
    ["segments", "preview", "all"],
    ["customers", "list"],
    ["feedback", "list"],
    ["suppressions", "show", "email", "\x1b[2Jada@example.com", "--reveal"],
])
def test_customer_text_is_printed_as_text(hostile_customer, command):
    result = CliRunner().invoke(app, command, env={"COLUMNS": "500"})
    assert result.exit_code == 0, result.output
    for sequence in OBEYED:
        assert sequence not in result.output
    assert "␛" in result.output  # the escape is shown, not obeyed
    assert "[red]x[/]" in result.output and "[link=https://evil.example]" in result.output  # not markup
    if command[0] in ("customers", "segments") and "show" not in command:  # addresses, masked
        assert "␛***@e***" in result.output


@pytest.mark.parametrize("command", [
    ["customers", "show", "c-hostile", "--reveal", "--json"],
    ["customers", "export", "c-hostile"],
    ["tasks", "list", "--json"],
    ["feedback", "list", "--json"],
    ["suppressions", "show", "email", "\x1b[2Jada@example.com", "--json"],
])
def test_json_output_escapes_what_a_terminal_would_obey_and_keeps_the_data(hostile_customer, command):
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    for sequence in OBEYED:
        assert sequence not in result.output
    assert HOSTILE in _strings(json.loads(result.output))  # a JSON reader gets the name as it was stored


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_errors_quote_input_as_text(sqlite_url):
    result = CliRunner().invoke(app, ["explain", "[red]nobody\x1b[2J"], env={"COLUMNS": "500"})
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "[red]nobody" in result.output


def test_neutralise_shows_every_control_character_and_keeps_text():
    assert neutralise("a\tb\nc") == "a\tb\nc"
    assert neutralise("\x1b[2J\r\x00\x7f\x9b\u2066") == "␛[2J␍␀␡\ufffd\ufffd"
    assert neutralise("Zoë 日本 🙂") == "Zoë 日本 🙂"
