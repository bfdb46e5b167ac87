"""Logging that never shows personal data: a filter masks emails and phone numbers."""

from __future__ import annotations

import logging

from channels.redaction import redact_text  # not via orchestrator.privacy: logging starts lean


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:  # tracebacks quote exception messages too
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Adds the filter to the logger's handlers (filters on handlers see propagated records)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def configure_logging(level: int = logging.WARNING) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    install_redaction()
