"""The customers of a segment: counted, or read as ascending ids in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select

from orchestrator.models import Customer, table_of
from orchestrator.segments.catalog import Segment, get_segment
from orchestrator.segments.filters import compile_filter

_CUSTOMER = table_of(Customer)


def _condition(segment: Segment | str, extra: dict | None) -> ColumnElement[bool]:
    seg = get_segment(segment) if isinstance(segment, str) else segment
    condition = compile_filter(seg.filter, segment=seg.name)
    if extra:
        condition = and_(condition, compile_filter(extra, segment=f"{seg.name} (extra filter)"))
    return condition


def iter_audience_chunks(
    session: Any, segment: Segment | str, chunk_size: int = 1000, extra: dict | None = None
) -> Iterator[list[int]]:
    """Customer ids in the segment, ascending, ``chunk_size`` at a time (keyset pagination)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    condition = _condition(segment, extra)
    id_column = _CUSTOMER.c.id
    last: int | None = None
    while True:
        query = select(id_column).where(condition).order_by(id_column).limit(chunk_size)
        if last is not None:
            query = query.where(id_column > last)
        ids = list(session.execute(query).scalars())
        if ids:
            yield ids
        if len(ids) < chunk_size:
            return
        last = ids[-1]


def audience_between(session: Any, segment: Segment | str, first: int, last: int,
                     extra: dict | None = None) -> list[int]:
    """Customer ids in the segment from ``first`` to ``last`` (inclusive), ascending: one chunk of
    ``iter_audience_chunks`` found again from its bounds."""
    id_column = _CUSTOMER.c.id
    query = select(id_column).where(_condition(segment, extra), id_column >= first, id_column <= last)
    return list(session.execute(query.order_by(id_column)).scalars())


@dataclass(frozen=True)
class SegmentAudience:
    """The customers of a segment (narrowed by ``extra``), read in short transactions: what a
    chunk task finds its customers in from an id range."""

    segment: str
    extra: dict | None = None

    def chunks(self, chunk_size: int) -> Iterator[list[int]]:
        from orchestrator.db import ShortTransactionReader

        return iter_audience_chunks(ShortTransactionReader(), self.segment, chunk_size=chunk_size,
                                    extra=self.extra)

    def between(self, first: int, last: int) -> list[int]:
        from orchestrator.db import ShortTransactionReader

        return audience_between(ShortTransactionReader(), self.segment, first, last, extra=self.extra)


def check_audience(segment: Segment | str, extra: dict | None = None) -> None:
    """Raises for an unknown segment or a filter that does not compile; queries nothing."""
    _condition(segment, extra)


def unmet_conditions(session: Any, segment: Segment | str, customer_id: int, extra: dict | None = None
                     ) -> list[dict] | None:
    """None when the customer is in the segment (narrowed by ``extra``) now; otherwise the entries of
    the filters (each a filter of its own, the entries being ANDed) that they do not meet: why they
    are left out."""
    seg = get_segment(segment) if isinstance(segment, str) else segment
    is_customer = _CUSTOMER.c.id == customer_id

    def meets(condition: ColumnElement[bool]) -> bool:
        return session.execute(select(_CUSTOMER.c.id).where(is_customer, condition)).first() is not None

    if meets(_condition(seg, extra)):
        return None
    entries = [*seg.filter.items(), *(extra or {}).items()]
    return [{key: value} for key, value in entries
            if not meets(compile_filter({key: value}, segment=seg.name))]


def count_audience(session: Any, segment: Segment | str, extra: dict | None = None) -> int:
    query = select(func.count()).select_from(_CUSTOMER).where(_condition(segment, extra))
    return int(session.execute(query).scalar_one())
