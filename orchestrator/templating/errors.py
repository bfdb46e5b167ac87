"""What can go wrong when a message is rendered."""

from __future__ import annotations


class TemplateProblem(ValueError):
    """A message could not be rendered as it stands (never sent with a hole in it)."""


class RenderError(TemplateProblem):
    """Unknown message, tone or channel, a missing variable, or a refused template construct."""


class LengthError(TemplateProblem):
    """The rendered text overflows its channel's limit (the message carries the numbers) or is text
    the channel refuses whatever its length (an empty X post, one with directional controls)."""
