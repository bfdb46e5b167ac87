"""The local outbox: what would have been sent, in the database and in a readable file."""

from __future__ import annotations

from sqlalchemy import func, select

from channels.base import OutboundMessage
from orchestrator.db import session_scope
from orchestrator.local_channels.outbox import OutboxAdapter
from orchestrator.models import OutboxEntry


def message(message_id: int, channel: str = "email", **kwargs) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel=channel,
        to=kwargs.pop("to", f"c{message_id}@example.com"),
        body=kwargs.pop("body", f"Hello {message_id}\nSecond line"),
        subject=kwargs.pop("subject", "Welcome"),
        **kwargs,
    )


def test_a_batch_becomes_rows_and_readable_lines(db_url, tmp_path):
    outbox = OutboxAdapter("email")
    results = outbox.send([message(1, html="<p>1</p>", topic="marketing"), message(2), message(3)])

    assert [r.message_id for r in results] == [1, 2, 3] and all(r.ok for r in results)
    assert len({r.provider_message_id for r in results}) == 3
    entries = outbox.entries()
    assert [(e.message_id, e.address, e.subject) for e in entries] == [
        (1, "c1@example.com", "Welcome"),
        (2, "c2@example.com", "Welcome"),
        (3, "c3@example.com", "Welcome"),
    ]
    assert entries[0].meta["html"] == "<p>1</p>" and entries[0].meta["topic"] == "marketing"
    assert results[0].provider_message_id == f"outbox-{entries[0].id}"

    (log,) = (tmp_path / "outbox").glob("email-*.log")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3  # one line per message, even with a multi-line body
    assert "message=2 to=c2@example.com" in lines[1] and '"Hello 2\\nSecond line"' in lines[1]


def test_each_channel_has_its_own_file_and_nothing_is_deduplicated(sqlite_url, tmp_path):
    sms = OutboxAdapter("sms")
    sms.send([message(5, "sms", to="+14155550005", subject=None, body="Code 1")])
    sms.send([message(5, "sms", to="+14155550005", subject=None, body="Code 1")])  # a real re-send
    OutboxAdapter("email").send([message(6)])

    with session_scope() as session:
        per_channel = dict(
            session.execute(select(OutboxEntry.channel, func.count()).group_by(OutboxEntry.channel)).all()
        )
    assert per_channel == {"sms": 2, "email": 1}
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "outbox").iterdir()) == ["email", "sms"]


def test_a_broadcast_is_one_public_entry(sqlite_url):
    outbox = OutboxAdapter("social")
    result = outbox.broadcast("Payments are degraded; we are on it.", dedupe_key="inc-1:investigating")
    assert result.error is None and result.provider_post_id
    (entry,) = outbox.entries()
    assert entry.address == "public" and entry.message_id is None
    assert entry.meta == {"broadcast": True, "dedupe_key": "inc-1:investigating"}
