"""Building a small world for dispatch tests: customers, ledger rows and a tiny templates folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from orchestrator.db import session_scope
from orchestrator.models import Customer, Message, MessageStatus, utcnow
from orchestrator.settings import get_settings
from tests.support.zones import DAYTIME, local_zone

MINI_TEMPLATES = {
    "tone_rules.yaml": "tones:\n  professional: {}\n",
    "messages/notice/message.yaml": (
        "topic: transactional\ndefault_tone: professional\nfacts: [what]\n"
        "channels: [email, sms, 'social:dm', phone]\n"
    ),
    "messages/notice/professional/email_subject.txt": "An update for {{ customer.first_name }}",
    "messages/notice/professional/email.txt": "Hello {{ customer.first_name }}, {{ data.what }}",
    "messages/notice/professional/email.html": "<p>Hello {{ customer.first_name }}, {{ data.what }}</p>",
    "messages/notice/professional/sms.txt": "Hi {{ customer.first_name }}: {{ data.what }}",
    "messages/notice/professional/social_dm.txt": "Hi {{ customer.first_name }}: {{ data.what }}",
    "messages/notice/professional/phone.txt": (
        "Call {{ customer.name }} and explain, calmly and in full: {{ data.what }}"
    ),
    "messages/promo/message.yaml": (
        "topic: marketing\nmarketing: true\ndefault_tone: professional\nchannels: [email]\n"
    ),
    "messages/promo/professional/email_subject.txt": "Something new",
    "messages/promo/professional/email.txt": "Have a look. Unsubscribe: {{ links.unsubscribe_url }}",
    "messages/promo/professional/email.html": "<p>Have a look.</p>",
}


def use_mini_templates(root: Path, monkeypatch) -> Path:
    """Writes the tiny templates folder and points ORCH_TEMPLATES_DIR at it."""
    for name, text in MINI_TEMPLATES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("ORCH_TEMPLATES_DIR", str(root))
    get_settings.cache_clear()
    return root


def add_customers(n: int, **fields: Any) -> list[int]:
    """``n`` customers with an address on every channel, in a zone where it is early afternoon now
    unless a ``timezone`` is given: what a test dispatches at the real clock is never held back for
    quiet hours, whatever the hour it runs."""
    fields.setdefault("timezone", local_zone(DAYTIME))
    with session_scope() as s:
        customers = [
            Customer(external_id=f"c{i}-{utcnow().timestamp()}", name=f"Ada Number{i}",
                     email=f"ada{i}@example.com", phone=f"+1415555{i:04d}", x_user_id=f"{9000 + i}",
                     **fields)
            for i in range(n)
        ]
        s.add_all(customers)
        s.flush()
        return [c.id for c in customers]  # type: ignore[misc]


def add_messages(customer_ids: list[int], *, channel: str = "email", template: str = "notice",
                 status: MessageStatus = MessageStatus.planned, send_at: datetime | None = None,
                 data: dict[str, Any] | None = None, dedupe: str = "d", topic: str | None = None,
                 **fields: Any) -> list[int]:
    topic = topic or ("marketing" if template == "promo" else "transactional")
    with session_scope() as s:
        rows = [
            Message(dedupe_key=f"{dedupe}-{cid}", customer_id=cid, topic=topic, channel=channel,
                    template=template, status=status, send_at=send_at or utcnow(),
                    data={"what": "your order shipped"} if data is None else data, **fields)
            for cid in customer_ids
        ]
        s.add_all(rows)
        s.flush()
        return [m.id for m in rows]  # type: ignore[misc]


def messages(ids: list[int] | None = None) -> dict[int, Message]:
    with session_scope() as s:
        query = select(Message)
        if ids is not None:
            query = query.where(Message.id.in_(ids))
        return {m.id: m for m in s.exec(query)}  # type: ignore[misc]
