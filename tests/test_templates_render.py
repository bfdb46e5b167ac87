"""Rendering: every shipped template, fallbacks, injection through customer data, strictness, sandbox."""

import re
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from orchestrator.links import verify_token
from orchestrator.models import Customer
from orchestrator.settings import REPO_ROOT, get_settings
from orchestrator.templating import (
    LengthError,
    RenderError,
    TemplateProblem,
    build_context,
    list_messages,
    message_info,
    reload_templates,
    render,
)

SHIPPED = REPO_ROOT / "templates"
SAMPLE = yaml.safe_load((SHIPPED / "sample_data.yaml").read_text())
TONES = ("professional", "empathetic", "appreciative", "urgent")


def copy_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the shipped templates, made the active ORCH_TEMPLATES_DIR."""
    root = tmp_path / "templates"
    shutil.copytree(SHIPPED, root)
    monkeypatch.setenv("ORCH_TEMPLATES_DIR", str(root))
    get_settings.cache_clear()
    reload_templates()
    return root


def sample_context(message: str, customer: dict | None = None, **facts) -> dict:
    data = {**SAMPLE["messages"][message], **facts}
    return build_context(customer or SAMPLE["customer"], data, topic=message_info(message).topic)


def _shipped_combinations():
    for message in list_messages():
        info = message_info(message)
        for variant in info.variants:
            for locale in info.locales:
                for tone in TONES:
                    name = f"{message}-{variant}-{locale}-{tone}"
                    yield pytest.param(message, variant, locale, tone, id=name)


def test_catalog_lists_the_shipped_messages():
    assert set(list_messages()) >= {
        "outage_notice", "outage_resolved", "security_alert", "spring_sale", "product_launch",
        "anniversary", "loyalty_milestone", "complaint_acknowledgement", "feedback_survey",
    }
    outage = message_info("outage_notice")
    assert outage.topic == "outage" and not outage.marketing
    assert outage.required_variables == (
        "incident_title", "affected", "actions", "next_update", "status_page_url")
    assert outage.default_tone == "empathetic" and outage.tones[0] == "empathetic"
    assert set(outage.channels) == {"email", "sms", "social", "phone", "whatsapp"}  # WhatsApp: issue 16
    assert outage.social_kinds == ("post", "dm")
    assert outage.locales == ("en", "es")
    assert message_info("spring_sale").marketing
    every_tone = {tone for m in list_messages() for tone in message_info(m).tones}
    assert every_tone >= set(TONES)
    with pytest.raises(RenderError, match="unknown message 'nope'"):
        message_info("nope")


@pytest.mark.parametrize(("message", "variant", "locale", "tone"), list(_shipped_combinations()))
def test_every_shipped_template_renders_with_sample_data(message, variant, locale, tone):
    channel, _, kind = variant.partition(":")
    rendered = render(message, tone=tone, channel=channel, kind=kind or None, context=sample_context(message),
                      locale=locale)
    info = message_info(message)
    # the requested tone and locale, or else the message's default tone and the default locale
    assert rendered.tone in (tone, info.default_tone)
    assert rendered.locale in (locale, "en")
    assert rendered.text and "{{" not in rendered.text and "{%" not in rendered.text
    assert not rendered.metrics.over_limit
    if channel == "email":
        assert rendered.subject and "\n" not in rendered.subject
        assert rendered.html.startswith("<!DOCTYPE html>") and "Example Co" in rendered.html
        assert get_settings().company_postal_address in rendered.text
    else:
        assert rendered.subject is None and rendered.html is None
    if info.marketing and channel == "sms":
        assert rendered.text.endswith("Reply STOP to opt out.")


def test_tone_falls_back_to_the_message_default_and_says_so():
    context = sample_context("outage_notice")
    assert render("outage_notice", tone="urgent", channel="sms", context=context).tone == "urgent"
    fallback = render("outage_notice", tone="appreciative", channel="sms", context=context)
    assert fallback.tone == "empathetic"
    assert fallback.text == render("outage_notice", tone="empathetic", channel="sms", context=context).text
    assert render("outage_notice", tone=None, channel="sms", context=context).tone == "empathetic"
    # the contact policy's names for tones are aliases
    assert render("outage_notice", tone="reassuring", channel="email", context=context).tone == "empathetic"
    with pytest.raises(RenderError, match="unknown tone 'grumpy'"):
        render("outage_notice", tone="grumpy", channel="sms", context=context)


def test_locale_falls_back_to_the_language_then_the_default_locale():
    context = sample_context("outage_notice")
    spanish = render("outage_notice", tone="empathetic", channel="email", context=context, locale="es")
    assert spanish.locale == "es"
    assert spanish.subject.startswith("Lo sentimos")
    # the shared partials follow the message's locale: greeting, sign-off, footer
    assert spanish.text.startswith("Hola, Amara:")
    assert "El equipo de Example Co" in spanish.text and "Elija cómo le contactamos" in spanish.text
    assert 'lang="es"' in spanish.html and "Elija cómo le contactamos" in spanish.html
    mexican = render("outage_notice", tone="empathetic", channel="sms", context=context, locale="es-MX")
    assert mexican.locale == "es"
    french = render("outage_notice", tone="empathetic", channel="sms", context=context, locale="fr")
    assert french.locale == "en" and "we're sorry" in french.text
    # a translation exists only for some channels: the others fall back to the default locale
    dm = render("outage_notice", tone="empathetic", channel="social", kind="dm", context=context, locale="es")
    assert dm.locale == "en" and dm.text.startswith("Hi Amara,")
    assert render("spring_sale", tone=None, channel="email", context=sample_context("spring_sale"),
                  locale="es").locale == "en"


HOSTILE_NAME = "{{7*7}}<script>alert('x')</script> Zoë 🎉 مريم"


def test_customer_data_renders_as_text_never_as_code():
    customer = {**SAMPLE["customer"], "name": HOSTILE_NAME}
    context = sample_context("spring_sale", customer=customer, offer="<b>50% off</b> {% raw %}",
                             code="{{ config }}")
    email = render("spring_sale", tone="professional", channel="email", context=context)
    assert "Hi {{7*7}}<script>alert('x')</script>," in email.text and "49" not in email.text
    assert "<p>Hi {{7*7}}&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;,</p>" in email.html
    assert "&lt;b&gt;50% off&lt;/b&gt; {% raw %}" in email.html
    assert "{{ config }}" in email.text and "<b>50% off</b>" in email.text  # plain text is not escaped
    dm = render("spring_sale", tone=None, channel="social", kind="dm", context=context)
    assert dm.text.startswith("Hi {{7*7}}<script>")
    script = render("security_alert", tone=None, channel="phone",
                    context=sample_context("security_alert", customer=customer)).text
    assert HOSTILE_NAME in script

    script_name = {**SAMPLE["customer"], "name": "<script>alert(1)</script>"}
    context = sample_context("anniversary", script_name)
    html = render("anniversary", tone=None, channel="email", context=context).html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    rtl = {**SAMPLE["customer"], "name": "مريم الحسن"}
    sms = render("anniversary", tone=None, channel="sms", context=sample_context("anniversary", rtl))
    assert "مريم" in sms.text and sms.metrics.encoding == "UCS-2"


def test_a_missing_variable_is_an_error_never_an_empty_hole():
    data = dict(SAMPLE["messages"]["outage_notice"])
    del data["next_update"]
    context = build_context(SAMPLE["customer"], data, topic="outage")
    expected = r"messages/outage_notice/empathetic/sms\.txt: missing variable.*next_update"
    with pytest.raises(RenderError, match=expected):
        render("outage_notice", tone="empathetic", channel="sms", context=context)
    broadcast = build_context(None, SAMPLE["messages"]["anniversary"], topic="loyalty")
    with pytest.raises(RenderError, match="missing variable"):
        render("anniversary", tone=None, channel="sms", context=broadcast)


def test_unknown_channel_kind_or_variant_is_refused():
    context = sample_context("anniversary")
    with pytest.raises(RenderError, match="unknown channel 'fax'"):
        render("anniversary", tone=None, channel="fax", context=context)
    with pytest.raises(RenderError, match="no social:post variant"):
        render("anniversary", tone=None, channel="social", kind="post", context=context)
    with pytest.raises(RenderError, match="unknown social kind"):
        render("anniversary", tone=None, channel="social", kind="story", context=context)


def test_overflow_is_an_error_with_the_numbers_never_a_truncation():
    with pytest.raises(LengthError, match=r"^sms: 4 segments \(GSM-7, \d+ chars\), max 3$"):
        render("outage_notice", tone=None, channel="sms",
               context=sample_context("outage_notice", affected="x" * 300))
    with pytest.raises(LengthError, match=r"^sms: 3 segments \(UCS-2, \d+ chars\), max 2$"):
        render("spring_sale", tone=None, channel="sms",
               context=sample_context("spring_sale", offer="20% off every annual plan, this spring only 🌷"))
    with pytest.raises(LengthError, match=r"^email subject: \d+ chars, max 78$"):
        render("outage_notice", tone=None, channel="email",
               context=sample_context("outage_notice", incident_title="Checkout " * 10))
    with pytest.raises(LengthError, match=r"^social post: weighted length \d+, max 280$"):
        render("outage_notice", tone=None, channel="social", kind="post",
               context=sample_context("outage_notice", affected="日本語" * 40))
    assert issubclass(LengthError, TemplateProblem) and issubclass(TemplateProblem, ValueError)


def test_build_context_exposes_chosen_fields_and_signed_links_only(monkeypatch):
    monkeypatch.setenv("ORCH_COMPANY_POSTAL_ADDRESS", "Example Co, 9 Quay Road, Dublin, Ireland")
    get_settings.cache_clear()
    customer = Customer(id=7, external_id="C-7", name="  Ada   Lovelace ", email="ada@example.org",
                        phone="+14155550100", tier="premium", customer_since=date(2001, 1, 1), locale="en",
                        attributes={"secret_note": "vip"})
    context = build_context(customer, {"offer": "x"}, topic="marketing", message_id=99)
    assert set(context) == {"customer", "brand", "links", "data", "topic", "message_id"}
    assert context["customer"]["first_name"] == "Ada" and context["customer"]["name"] == "Ada Lovelace"
    assert context["customer"]["years_as_customer"] >= 24
    flat = repr(context)
    assert "ada@example.org" not in flat and "5550100" not in flat and "secret_note" not in flat
    assert context["brand"]["name"] == "Example Co"
    assert context["brand"]["postal_address"] == "Example Co, 9 Quay Road, Dublin, Ireland"
    unsubscribe = verify_token(context["links"]["unsubscribe_url"].rsplit("/", 1)[1], "unsubscribe")
    assert (unsubscribe.customer_id, unsubscribe.topic) == (7, "marketing")
    assert verify_token(context["links"]["preferences_url"].rsplit("/", 1)[1], "preferences").customer_id == 7
    assert context["data"] == {"offer": "x"} and context["message_id"] == 99
    with pytest.raises(RenderError, match="customer_since 'last spring' is not a date"):
        build_context({"id": 1, "customer_since": "last spring"}, {}, topic="loyalty")


def test_the_sandbox_refuses_attribute_tricks_and_mutation(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    sms = root / "messages/anniversary/appreciative/sms.txt"
    context = sample_context("anniversary")
    for source in ("{{ ''.__class__.__mro__ }}", "{{ customer.__class__ }}", "{{ data.pop('gift') }}",
                   "{{ range.__globals__ }}"):
        sms.write_text(source)
        reload_templates()
        with pytest.raises(RenderError, match=r"refused by the sandbox|unsafe"):
            render("anniversary", tone=None, channel="sms", context=context)
    assert context["data"]["gift"]  # nothing was mutated


def test_html_templates_cannot_pull_in_unescaped_text(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    (root / "messages/anniversary/appreciative/email.html").write_text(
        '{% extends "partials/layout.html" %}'
        '{% block content %}{% include "partials/footer.txt" %}{% endblock %}')
    with pytest.raises(RenderError, match="may only use HTML templates, not partials/footer.txt"):
        render("anniversary", tone=None, channel="email", context=sample_context("anniversary"))


def test_a_template_syntax_error_names_the_file_and_line(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    (root / "messages/anniversary/appreciative/sms.txt").write_text("Hello\n{% if %}")
    with pytest.raises(RenderError, match=re.escape("messages/anniversary/appreciative/sms.txt, line 2")):
        render("anniversary", tone=None, channel="sms", context=sample_context("anniversary"))


def test_rendering_reads_no_files_after_the_first_load(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    context = sample_context("anniversary")
    before = render("anniversary", tone=None, channel="sms", context=context).text
    shutil.rmtree(root)
    assert render("anniversary", tone=None, channel="sms", context=context).text == before
    assert render("anniversary", tone=None, channel="email", context=context).subject


def test_a_regional_translation_uses_the_language_partials(tmp_path, monkeypatch):
    root = copy_templates(tmp_path, monkeypatch)
    folder = root / "messages/outage_notice/empathetic"
    for name in ("email_subject", "email"):
        for ext in ("txt", "html"):
            if (folder / f"{name}.es.{ext}").exists():
                shutil.copy(folder / f"{name}.es.{ext}", folder / f"{name}.es-MX.{ext}")
    (folder / "email.es-MX.txt").write_text(
        (folder / "email.es.txt").read_text().replace("Lo sentimos.", "Lo sentimos mucho."))
    reload_templates()
    email = render("outage_notice", tone=None, channel="email", context=sample_context("outage_notice"),
                   locale="es-MX")
    assert email.locale == "es-MX" and "Lo sentimos mucho." in email.text
    assert email.text.startswith("Hola, Amara:") and "Elija cómo le contactamos" in email.text


def test_the_help_reply_says_who_we_are_what_we_text_how_to_stop_and_how_to_reach_a_person(
        tmp_path, monkeypatch):
    text = render("sms_help", tone=None, channel="sms", context=build_context(None, {}, topic="support")).text
    assert text.startswith("Example Co: texts about your account")
    assert "Reply STOP to opt out" in text
    assert "Help: +1 415 555 0100 or https://example.com/help." in text
    assert text.rstrip().endswith("- Example Co")  # signed with the brand's name
    # The brand and its contacts come from brand.yaml, whatever brand.yaml says.
    root = copy_templates(tmp_path, monkeypatch)
    (root / "brand.yaml").write_text("name: Acme Telecom\nsupport_email: care@acme.test\n")
    reload_templates()
    text = render("sms_help", tone=None, channel="sms", context=build_context(None, {}, topic="support")).text
    assert text.startswith("Acme Telecom:") and "Help: care@acme.test." in text
    assert text.rstrip().endswith("- Acme Telecom") and "Example Co" not in text
    # No contact at all: an error that says what to set, not a HELP reply without one.
    (root / "brand.yaml").write_text("name: Acme Telecom\nwebsite: https://acme.test\n")
    reload_templates()
    with pytest.raises(RenderError, match="care_contact"):
        render("sms_help", tone=None, channel="sms", context=build_context(None, {}, topic="support"))
