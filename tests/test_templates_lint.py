"""The tone guard: the shipped set passes, and every rule fails on a crafted bad template."""

import json

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.templating import TemplateProblem
from orchestrator.templating.lint import lint_templates
from tests.test_templates_render import copy_templates

runner = CliRunner()


def test_the_shipped_templates_pass_the_tone_guard():
    report = lint_templates()
    assert report.findings == []
    assert report.rendered >= 50  # every message x tone x channel x locale variant that exists


def test_lint_command_exits_zero_on_the_shipped_set():
    result = runner.invoke(app, ["templates", "lint"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    as_json = json.loads(runner.invoke(app, ["templates", "lint", "--json"]).output)
    assert as_json["ok"] is True and as_json["findings"] == []


SECURITY_SMS = "messages/security_alert/urgent/sms.txt"
FACTS = "{{ data.event }} {{ data.occurred_at }} {{ data.device }} {{ data.secure_url }}"

# (file to overwrite, new content, message, tone, channel, rule, words the finding must show)
BAD_TEMPLATES = [
    pytest.param(
        "messages/outage_notice/urgent/sms.txt",
        "Notwithstanding the aforementioned considerations, {{ data.incident_title }} "
        "necessitates comprehensive reconsideration of interdependent infrastructural arrangements "
        "affecting {{ data.affected }}; {{ data.actions }}; {{ data.next_update }}; please review "
        "{{ data.status_page_url }}",
        "outage_notice", "urgent", "sms", "readability", "Notwithstanding the aforementioned",
        id="readability"),
    pytest.param(
        "messages/anniversary/appreciative/sms.txt",
        "{{ brand.name }}: another year. Sadly, a terrible, awful, disappointing year. {{ data.gift }}.",
        "anniversary", "appreciative", "sms", "sentiment", "terrible, awful", id="sentiment"),
    pytest.param(
        SECURITY_SMS, "Please check this! Right away! " + FACTS,
        "security_alert", "urgent", "sms", "exclamations", "Right away!", id="exclamations"),
    pytest.param(
        SECURITY_SMS, "Please check YOUR ACCOUNT now. " + FACTS,
        "security_alert", "urgent", "sms", "all_caps", "YOUR ACCOUNT", id="all_caps"),
    pytest.param(
        SECURITY_SMS, "Please check your account, or it may be hacked. " + FACTS,
        "security_alert", "urgent", "sms", "banned_phrase", "may be hacked", id="banned_phrase"),
    pytest.param(
        "messages/outage_notice/empathetic/sms.txt",
        "{{ data.incident_title }}. Affected: {{ data.affected }}. {{ data.actions }}. "
        "More by {{ data.next_update }}: {{ data.status_page_url }}",
        "outage_notice", "empathetic", "sms", "required_element", "missing apology", id="required_apology"),
    pytest.param(
        "messages/outage_notice/empathetic/sms.txt",
        "We're sorry: {{ data.incident_title }}. Affected: {{ data.affected }}. {{ data.actions }}. "
        "Status: {{ data.status_page_url }}",
        "outage_notice", "empathetic", "sms", "same_facts", "next_update", id="same_facts"),
    pytest.param(
        "messages/spring_sale/professional/sms.txt",
        "{{ brand.name }}: {{ data.offer }} until {{ data.ends_on }}, code {{ data.code }}: "
        "{{ data.shop_url }}",
        "spring_sale", "professional", "sms", "compliance", "Reply STOP", id="compliance_sms"),
    pytest.param(
        "messages/spring_sale/appreciative/email.txt",
        "Hello. Enjoy {{ data.offer }} until {{ data.ends_on }} with {{ data.code }}: {{ data.shop_url }}",
        "spring_sale", "appreciative", "email", "compliance", "unsubscribe link", id="compliance_email"),
    pytest.param(
        "messages/anniversary/appreciative/sms.txt",
        "{{ data.gift }} " + "🎉 Thank you " * 30,
        "anniversary", "appreciative", "sms", "length", "sms: 7 segments (UCS-2", id="length"),
    pytest.param(
        "messages/spring_sale/professional/social_post.txt",
        "Hey {{ customer.first_name }}: {{ data.offer }} until {{ data.ends_on }}, code {{ data.code }}. "
        "{{ data.shop_url }}",
        "spring_sale", "professional", "social:post", "render", "without customer data",
        id="public_post_uses_customer"),
    pytest.param(
        "messages/anniversary/appreciative/sms.txt",
        "Thank you {{ data.gift }} {{ data.coupon }}",
        "anniversary", "appreciative", "sms", "render", "coupon", id="missing_variable"),
    pytest.param(  # the incident title names the problem: this would celebrate it
        "messages/outage_resolved/empathetic/sms.txt",
        "{{ brand.name }}: good news: {{ data.incident_title | lower }}, fixed at {{ data.resolved_at }}. "
        "Cause: {{ data.cause_summary }}. Sorry. {{ data.status_page_url }}",
        "outage_resolved", "empathetic", "sms", "banned_phrase", "good news: card payment delays",
        id="good_news_about_the_problem"),
]


@pytest.mark.parametrize(("path", "content", "message", "tone", "channel", "rule", "shows"), BAD_TEMPLATES)
def test_each_rule_fails_on_a_crafted_bad_template(tmp_path, monkeypatch, path, content, message, tone,
                                                   channel, rule, shows):
    root = copy_templates(tmp_path, monkeypatch)
    (root / path).write_text(content, encoding="utf-8")
    report = lint_templates()
    hits = [f for f in report.findings if f.rule == rule]
    assert hits, [f.describe() for f in report.findings]
    finding = hits[0]
    assert (finding.message, finding.tone, finding.channel) == (message, tone, channel)
    assert finding.template == path
    assert shows in finding.text or shows in finding.detail
    # the command names template, tone, channel, rule and the text, and exits non-zero
    result = runner.invoke(app, ["templates", "lint"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"{message} / {tone} / {channel}" in output and f"[{rule}]" in output and path in output


def test_a_phone_task_without_a_call_script_fails(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    (root / "messages/anniversary/appreciative/phone.txt").unlink()
    [finding] = lint_templates().findings
    assert (finding.rule, finding.channel) == ("missing_variant", "phone")
    assert "call script" in finding.detail


def test_a_too_short_call_script_fails_as_a_length_problem(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    (root / "messages/anniversary/appreciative/phone.txt").write_text("Call {{ data.gift }}")
    [finding] = lint_templates().findings
    assert finding.rule == "length" and "call script" in finding.detail


def test_a_translation_is_checked_with_its_own_text(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    (root / "messages/outage_notice/empathetic/sms.es.txt").write_text(
        "{{ data.incident_title }} {{ data.affected }} {{ data.actions }} {{ data.next_update }} "
        "{{ data.status_page_url }} ¡URGENTE!")
    findings = {(f.locale, f.rule) for f in lint_templates().findings}
    assert findings == {("es", "required_element"), ("es", "all_caps"), ("es", "exclamations")}


def test_json_output_lists_findings(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    (root / SECURITY_SMS).write_text("Please check this now!! " + FACTS)
    result = runner.invoke(app, ["templates", "lint", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert not report["ok"]
    banned = [f for f in report["findings"] if f["rule"] == "banned_phrase"]
    assert banned and {"template": SECURITY_SMS, "tone": "urgent", "channel": "sms", "locale": "en"}.items() \
        <= banned[0].items()
    assert "'!!'" in banned[0]["detail"] and "now!!" in banned[0]["text"]


def test_a_broken_tone_rules_file_names_the_key(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    rules = root / "tone_rules.yaml"
    rules.write_text(rules.read_text().replace("sentiment: [-0.9, 0.9]", "sentiment: [0.9, -0.9]"))
    with pytest.raises(TemplateProblem, match=r"tone_rules.yaml: tones\.urgent: .*sentiment"):
        lint_templates()
    result = runner.invoke(app, ["templates", "lint"])
    assert result.exit_code == 1 and "tones.urgent" in result.output
