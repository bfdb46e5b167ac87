"""Helpers every adapter uses to build normalised results."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from channels.base import OutboundMessage, Permanent, PermanentReason, ResultStatus, SendResult, Transient
from channels.redaction import redact_text


def accepted(
    message: OutboundMessage, provider: str, provider_message_id: str | None, raw: dict[str, Any]
) -> SendResult:
    return SendResult(message.message_id, ResultStatus.accepted, provider, provider_message_id, None, raw)


def transient(
    message: OutboundMessage,
    provider: str,
    reason: str,
    retry_after: float | None = None,
    raw: dict[str, Any] | None = None,
) -> SendResult:
    return SendResult(
        message.message_id,
        ResultStatus.transient,
        provider,
        error=Transient(reason, retry_after),
        raw=raw or {},
    )


def permanent(
    message: OutboundMessage,
    provider: str,
    reason: PermanentReason,
    detail: str = "",
    raw: dict[str, Any] | None = None,
    suppress_reason: str | None = None,
) -> SendResult:
    # Providers echo the address in error texts; results end up in the ledger and in logs.
    return SendResult(
        message.message_id,
        ResultStatus.permanent,
        provider,
        error=Permanent(reason, redact_text(detail), suppress_reason),
        raw=raw or {},
    )


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """Case-insensitive header lookup over any mapping (urllib, requests, plain dict)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return None if value is None else str(value)


def seconds_until(epoch: str | float | None, now: float | None = None) -> float | None:
    """Seconds from now until a rate-limit reset given as epoch seconds (never negative)."""
    if epoch in (None, ""):
        return None
    try:
        return max(0.0, float(epoch) - (time.time() if now is None else now))
    except (TypeError, ValueError):
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is not used by our providers)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def safe_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Response headers worth keeping in ``raw`` (no cookies or auth)."""
    if not headers:
        return {}
    drop = {"set-cookie", "authorization", "www-authenticate"}
    return {str(k): str(v) for k, v in headers.items() if str(k).lower() not in drop}
