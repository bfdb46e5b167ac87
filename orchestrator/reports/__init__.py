"""Reports from the ledger and the delivery events: what was sent, what happened, what came back.

``build_report(session, ReportSlice(campaign=...))`` returns the funnel, the rates with their
denominators, breakdowns by channel, tone, template, locale, segment (and variant), the variant
comparison and the sender-health flags, all counted with grouped SQL on SQLite or PostgreSQL.
"""

from orchestrator.reports.report import build_report, sender_health
from orchestrator.reports.slices import ReportSlice, UnknownSlice, parse_period, recent_slices

__all__ = ["ReportSlice", "UnknownSlice", "build_report", "parse_period", "recent_slices", "sender_health"]
