"""The ``message`` table for Core statements (bulk reads and writes skip the ORM's cost)."""

from __future__ import annotations

from sqlalchemy import Table

from orchestrator.models import Message, table_of

MESSAGE: Table = table_of(Message)
