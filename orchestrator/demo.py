"""The demo's groundwork: a database with the sample customers, and example customers to explain.

Everything here is plain core code; ``orchestrator demo`` (the CLI) runs the real flows on top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import col

from orchestrator.customer_import import ImportReport, import_customers
from orchestrator.db import normalise_url, session_scope, upgrade
from orchestrator.models import Customer, Message, MessageStatus
from orchestrator.privacy import mask_address
from orchestrator.reasons import QUIET_HOURS, reason_of
from orchestrator.settings import REPO_ROOT, get_settings

SAMPLE_CUSTOMERS = REPO_ROOT / "samples" / "customers.csv"
# Every provider channel goes to the local outbox, whatever credentials the environment holds.
OUTBOX_ADAPTERS = '{"email": "outbox", "sms": "outbox", "social": "outbox"}'


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def use_demo_settings(url: str) -> None:
    """Points this process at ``url`` and the local outbox (read by the flows through settings)."""
    os.environ["ORCH_DATABASE_URL"] = url
    os.environ["ORCH_CHANNEL_ADAPTERS"] = OUTBOX_ADAPTERS
    get_settings.cache_clear()


def start_over(url: str) -> list[Path]:
    """Removes the demo's SQLite file and the outbox files; returns what was removed."""
    path = sqlite_path(url)
    if path is None:
        raise ValueError("--fresh only recreates a SQLite database file; drop other databases yourself")
    removed = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"),
                      *sorted(Path(get_settings().outbox_dir).glob("*.log"))):
        if candidate.exists():
            candidate.unlink()
            removed.append(candidate)
    return removed


def prepare(url: str) -> ImportReport:
    """Schema up to date, sample customers imported (an upsert: a second run changes nothing)."""
    upgrade(url)
    return import_customers(SAMPLE_CUSTOMERS)


@dataclass
class Example:
    customer: str  # external id
    channel: str
    address: str  # masked
    status: str
    why: str


# Which kinds of outcome the examples should show, in this order.
_WANTED = (
    ("sent", MessageStatus.sent, None),
    ("a call for an agent", None, "phone"),
    ("waiting for quiet hours to end", MessageStatus.deferred, "quiet_hours"),
    ("cancelled when the incident was resolved", MessageStatus.cancelled, None),
    ("suppressed", MessageStatus.suppressed, None),
)


def examples(dedupe_keys: list[str], limit: int = 5) -> list[tuple[str, Example]]:
    """One customer per kind of outcome among the demo's messages, addresses masked."""
    out: list[tuple[str, Example]] = []
    seen: set[int] = set()
    with session_scope() as session:
        rows = session.execute(
            select(Message, Customer).join(Customer, col(Customer.id) == col(Message.customer_id))
            .where(col(Message.dedupe_key).in_(dedupe_keys)).order_by(col(Message.id))
        ).all()
        for label, status, hint in _WANTED:
            for message, customer in rows:
                if customer.id in seen:
                    continue
                if status is not None and message.status != status:
                    continue
                if hint == "phone" and message.channel != "phone":
                    continue
                codes = message.reason_codes
                if hint == "quiet_hours" and not any(reason_of(c) is QUIET_HOURS for c in codes):
                    continue
                handle = customer.x_handle and f"@{customer.x_handle[:1]}***"
                address = {"email": customer.email, "sms": customer.phone, "phone": customer.phone,
                           "social": handle}.get(message.channel)
                why = message.reason_text or ", ".join(message.reason_codes)
                out.append((label, Example(customer.external_id, message.channel,
                                           mask_address(message.channel, address), message.status,
                                           why.strip())))
                seen.add(customer.id)
                break
    return out[:limit]
