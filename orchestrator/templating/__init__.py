"""Tone templates: rendering, channel length rules, the tone guard (lint) and the catalog."""

from orchestrator.templating.catalog import MessageInfo, list_messages, message_info
from orchestrator.templating.context import build_context
from orchestrator.templating.environment import reload_templates
from orchestrator.templating.errors import LengthError, RenderError, TemplateProblem
from orchestrator.templating.lengths import Metrics, sms_count, x_weighted_length
from orchestrator.templating.render import Rendered, render

__all__ = [
    "LengthError",
    "MessageInfo",
    "Metrics",
    "RenderError",
    "Rendered",
    "TemplateProblem",
    "build_context",
    "list_messages",
    "message_info",
    "reload_templates",
    "render",
    "sms_count",
    "x_weighted_length",
]
