"""The ``message`` table for Core statements (bulk reads and writes skip the ORM's cost)."""

from __future__ import annotations

from sqlalchemy import Table

from orchestrator.models import Message

MESSAGE: Table = Message.metadata.tables[Message.__tablename__]
