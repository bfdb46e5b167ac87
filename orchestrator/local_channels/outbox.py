"""The local outbox: a stand-in provider for any channel that records what would be sent.

It is the default wherever no provider credentials are configured, so the demo runs anywhere.
Each message becomes an ``OutboxEntry`` row (written in bulk) and one readable line in
``<outbox_dir>/<channel>-<YYYYMMDD>.log``. Like a real provider it keeps the full address (it is
the recipient's mailbox, not a log) and it does not deduplicate: a message sent twice shows up
twice, which is what crash tests count.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import insert, select
from sqlmodel import col

from channels.base import BroadcastResult, Limits, OutboundMessage, SendResult
from channels.results import accepted, transient
from orchestrator.db import brief_cause, is_unavailable, session_scope
from orchestrator.models import OutboxEntry, table_of, utcnow
from orchestrator.settings import Settings, get_settings

PROVIDER = "outbox"
PUBLIC = "public"  # the address of a broadcast post

_file_lock = threading.Lock()


class OutboxAdapter:
    name: ClassVar[str] = "outbox"
    provider: ClassVar[str] = PROVIDER
    channel: str  # set per instance: one outbox class serves every channel

    def __init__(
        self,
        channel: str = "email",
        *,
        settings: Settings | None = None,
        outbox_dir: str | Path | None = None,
        database_url: str | None = None,
    ):
        s = settings or get_settings()
        self.channel = channel
        self.outbox_dir = Path(outbox_dir or s.outbox_dir)
        self.database_url = database_url
        self.limits = Limits(max_batch=1000)

    @classmethod
    def configured(cls) -> bool:
        return True

    def log_path(self, now: datetime | None = None) -> Path:
        return self.outbox_dir / f"{self.channel}-{(now or utcnow()):%Y%m%d}.log"

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        if not batch:
            return []
        now = utcnow()
        rows = [
            {
                "message_id": m.message_id,
                "channel": self.channel,
                "address": m.to,
                "subject": m.subject,
                "body": m.body,
                "meta": _meta(m),
                "created_at": now,
            }
            for m in batch
        ]
        try:
            ids = self._insert(rows)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The INSERT rolled back: nothing was "sent", so nothing is in doubt. Try again later.
            why = f"outbox database unavailable: {brief_cause(exc)}"
            return [transient(m, PROVIDER, why, retry_after=5.0) for m in batch]
        self._append_lines(rows, ids, now)
        return [
            accepted(
                m,
                PROVIDER,
                f"outbox-{entry_id}",
                {"outbox_entry_id": entry_id, "file": str(self.log_path(now))},
            )
            for m, entry_id in zip(batch, ids, strict=True)
        ]

    def broadcast(self, text: str, dedupe_key: str) -> BroadcastResult:
        now = utcnow()
        row = {
            "message_id": None,
            "channel": self.channel,
            "address": PUBLIC,
            "subject": None,
            "body": text,
            "meta": {"broadcast": True, "dedupe_key": dedupe_key},
            "created_at": now,
        }
        (entry_id,) = self._insert([row])
        self._append_lines([row], [entry_id], now)
        return BroadcastResult(PROVIDER, f"outbox-{entry_id}", None, {"outbox_entry_id": entry_id})

    def _insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """One multi-row INSERT ... RETURNING id (SQLite 3.35+ and PostgreSQL), ids in row order."""
        with session_scope(self.database_url) as session:
            table = table_of(OutboxEntry)
            result = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
            return [row[0] for row in result]

    def _append_lines(self, rows: list[dict[str, Any]], ids: list[int], now: datetime) -> None:
        lines = []
        for row, entry_id in zip(rows, ids, strict=True):
            subject = f" subject={json.dumps(row['subject'], ensure_ascii=False)}" if row["subject"] else ""
            lines.append(
                f"{now.isoformat(timespec='seconds')} entry={entry_id} message={row['message_id']} "
                f"to={row['address']}{subject} body={json.dumps(row['body'], ensure_ascii=False)}\n"
            )
        path = self.log_path(now)
        with _file_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.writelines(lines)

    def entries(self) -> list[OutboxEntry]:
        """What this channel's outbox holds, oldest first (for the demo, tests and the CLI)."""
        with session_scope(self.database_url) as session:
            query = (select(OutboxEntry).where(col(OutboxEntry.channel) == self.channel)
                     .order_by(col(OutboxEntry.id)))
            return list(session.scalars(query))

    def close(self) -> None:
        pass


def _meta(message: OutboundMessage) -> dict[str, Any]:
    meta: dict[str, Any] = {"topic": message.topic, "marketing": message.marketing}
    for key in ("html", "unsubscribe_url", "customer_id"):
        value = getattr(message, key)
        if value:
            meta[key] = value
    if message.categories:
        meta["categories"] = message.categories
    if message.meta:
        meta["meta"] = message.meta
    return meta
