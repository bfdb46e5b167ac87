"""A campaign's parameters checked before anything runs: template, topic, facts, tone, send time.

``campaign run`` and ``plan`` both call ``check_campaign``, so a dry run refuses exactly what a
real run would refuse. It imports no Prefect: the error comes before any slow start.
"""

from __future__ import annotations

from typing import Any

from orchestrator.policy.config import load_policy
from orchestrator.policy.timing import parse_send_time


class CampaignError(ValueError):
    """The campaign's parameters cannot work; nothing was reserved or sent."""


def check_campaign(template: str, topic: str | None, data: dict[str, Any], send_time: str,
                   tone: str | None = None) -> str:
    """Validates the parameters before anything is written; returns the topic to use."""
    from orchestrator.templating import TemplateProblem, message_info
    from orchestrator.templating.catalog import get_catalog

    try:
        info = message_info(template)
    except TemplateProblem as exc:
        raise CampaignError(str(exc)) from None
    topic = topic or info.topic
    load_policy().topic(topic)  # an unknown topic is a PolicyError naming the known ones
    if info.marketing and topic != info.topic:
        raise CampaignError(f"{template} is a {info.topic} message: sending it as {topic} would dodge "
                            f"the {info.topic} caps and consent rules")
    missing = [fact for fact in info.required_variables if fact not in data]
    if missing:
        raise CampaignError(f"{template} needs these facts in data: {', '.join(missing)}")
    if tone is not None and get_catalog().rules.resolve_tone(tone) is None:
        raise CampaignError(f"unknown tone {tone!r}")
    parse_send_time(send_time)  # SendTimeError (a ValueError) names the accepted forms
    return topic
