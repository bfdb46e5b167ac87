"""Named audiences: filters declared in ``segments.yaml``, compiled to SQL the database runs.

One module per idea: ``filters`` (the filter language, compiled to a SQLAlchemy condition),
``attribute_sql`` (a customer's JSON attributes in SQL, per dialect), ``catalog`` (the segments
of ``segments.yaml``, plus the built-in ``all``) and ``audience`` (the customers of a segment:
counted, read in chunks, or asked why one customer is not among them).
"""

from orchestrator.segments.audience import (
    SegmentAudience,
    check_audience,
    count_audience,
    iter_audience_chunks,
    unmet_conditions,
)
from orchestrator.segments.catalog import Segment, get_segment, load_segments
from orchestrator.segments.filters import SegmentError, compile_filter

__all__ = [
    "Segment",
    "SegmentAudience",
    "SegmentError",
    "check_audience",
    "compile_filter",
    "count_audience",
    "get_segment",
    "iter_audience_chunks",
    "load_segments",
    "unmet_conditions",
]
