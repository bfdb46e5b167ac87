"""The reason vocabulary: every code has a kind and words, codes keep their stored spelling, and
no module spells a code itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from orchestrator import reasons
from orchestrator.reasons import VOCABULARY, Kind, describe, fallback_code, has_kind, kind_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("reason", VOCABULARY.values(), ids=lambda r: r.name)
def test_every_reason_has_a_kind_and_words(reason: reasons.Reason) -> None:
    for code in (reason.code(), reason.code("sms"), reason.code("cap:daily")):
        assert kind_of(code) is reason.kind
        words = describe(code)
        assert words and words != code


def test_unknown_codes_are_described_as_they_are() -> None:
    for code in ("", "mystery", "mystery:sms", "route_x:sms", "  ", "a + b"):
        assert describe(code) == code
        assert kind_of(code) is None


def test_codes_keep_their_stored_spelling() -> None:
    assert reasons.QUIET_HOURS.code("sms") == "quiet_hours:sms"
    assert reasons.BYPASS.code(reasons.CAP.code("daily")) == "bypass:cap:daily"
    assert reasons.OPTED_OUT == "consent:opted_out"
    assert reasons.DO_NOT_CONTACT.code() == "do_not_contact"
    assert reasons.RENDER_ERROR.code() == "render_error"
    assert reasons.EXPIRED.code("deadline") == "expired:deadline"
    assert reasons.SUPERSEDED.code("resolved") == "superseded:resolved"
    assert fallback_code("sms", "email") == "fallback:sms->email"
    assert reasons.NO_ADDRESS.code("") == "no_address:"


def test_kinds_say_how_a_message_goes_and_why_it_waits() -> None:
    assert has_kind("send_time:09:00", reasons.HOW_IT_GOES)
    assert has_kind("send_time:09:00", reasons.WHY_IT_WAITS)
    assert has_kind("route:sms", reasons.HOW_IT_GOES) and not has_kind("route:sms", reasons.WHY_IT_WAITS)
    assert has_kind("quiet_hours:sms", reasons.WHY_IT_WAITS)
    assert not has_kind("permanent:blocked", reasons.HOW_IT_GOES | reasons.WHY_IT_WAITS)
    assert kind_of("cap:daily") is Kind.suppression
    assert kind_of("gave_up:attempts") is Kind.failure


def test_descriptions_read_as_before() -> None:
    assert describe("quiet_hours:sms") == "quiet hours for SMS (waits until they end, local time)"
    assert describe("quiet_hours:personal") == "personal quiet hours (waits until they end, local time)"
    assert describe("bypass:cap:daily") == "went out although frequency cap daily is full (the topic may)"
    assert describe("permanent:invalid_address") == "the provider refused it for good (invalid address)"


# Strings that start like a code and are something else.
NOT_CODES = {"escalation:task-"}  # the dedupe key of an escalation's fallback message


def _string_starts(tree: ast.AST) -> set[tuple[int, str]]:
    """The literal text each string (or the first literal part of each f-string) starts with."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.add((node.lineno, first.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add((node.lineno, node.value))
    return out


def test_no_module_spells_a_reason_code_itself() -> None:
    """Writers and readers build codes from the vocabulary, so its spelling has one owner."""
    names = "|".join(sorted(VOCABULARY, key=len, reverse=True))
    spelled = re.compile(rf"^({names}):(?! )")  # "reconcile: 3 stuck" is a log line, not a code
    found = []
    for folder in ("orchestrator", "flows", "channels"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "reasons.py" or "migrations" in path.parts:
                continue
            for line, text in sorted(_string_starts(ast.parse(path.read_text(), str(path)))):
                if spelled.match(text) and text not in NOT_CODES:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert found == []
