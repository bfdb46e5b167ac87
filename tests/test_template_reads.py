"""Which customer fields templates read: mail merge splits groups only by those."""

from __future__ import annotations

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from orchestrator.templating import build_context
from orchestrator.templating.environment import get_template_set
from orchestrator.templating.merge import Item, render_many
from orchestrator.templating.reads import customer_fields_read
from tests.test_mail_merge import SAMPLE, customer

VOICE = "{% macro greet(person) %}Hi {{ person.first_name }}{% endmacro %}"


def reads(**sources: str) -> frozenset[str] | None:
    return customer_fields_read(ImmutableSandboxedEnvironment(), sources)


def test_fields_read_directly_by_item_and_through_a_macro_parameter():
    assert reads(a="{{ customer.name }} {% if customer['tier'] == 'gold' %}x{% endif %}") == {"name", "tier"}
    assert reads(voice=VOICE, a='{% import "voice" as v %}{{ v.greet(customer) }} {{ customer.tier }}') == {
        "first_name", "tier"}
    assert reads(voice=VOICE, a='{% import "voice" as v %}{{ v.greet(person=customer) }}') == {"first_name"}
    assert reads(a="{{ data.offer }}") == frozenset()


@pytest.mark.parametrize("source", [
    "{{ customer }}",  # printed whole
    "{{ customer|attr('tier') }}",  # filtered
    "{% set c = customer %}{{ c.tier }}",  # assigned
    "{{ customer[data.field] }}",  # looked up by a variable
    "{{ unknown_macro(customer) }}",  # passed to something that is not a macro of the catalog
    "{% macro m(p) %}{{ p }}{% endmacro %}{{ m(customer) }}",  # a macro that uses it whole
    "{{ customer.name",  # does not parse
])
def test_any_other_use_means_any_field_may_matter(source):
    assert reads(a=source) is None


def test_the_catalog_reads_a_few_fields_and_a_zone_no_template_reads_does_not_split_a_merge(sqlite_url):
    read = get_template_set().customer_fields_read
    assert read is not None and "timezone" not in read and "tier" in read

    def items(zone_of):
        facts = SAMPLE["messages"]["spring_sale"]
        return [Item("spring_sale", "professional", "email", "en", None,
                     build_context(customer(i, timezone=zone_of(i), tier="standard", locale="en"), facts,
                                   topic="marketing", message_id=500 + i)) for i in range(1, 41)]

    one_zone = render_many(items(lambda i: "UTC"))
    many_zones = render_many(items(lambda i: ["UTC", "Asia/Kathmandu", "America/Lima", "Europe/Oslo"][i % 4]))
    def groups(outcomes):
        return {o.merge.key for o in outcomes if o.merge is not None}

    assert len(groups(many_zones)) == len(groups(one_zone)) >= 1
    assert [o.rendered for o in many_zones] == [o.rendered for o in one_zone]
