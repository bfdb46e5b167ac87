"""A report as tables of text for people: the CLI's Rich tables and the Prefect artifacts.

Values come from the ledger (template names, segments, reason codes); callers print them as
plain text (Rich markup off, Markdown escaped), never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.reports.funnel import STAGES
from orchestrator.reports.rates import RATES

FUNNEL_LABELS = {
    "audience": "audience (customers)", "messages": "messages decided", "planned": "planned to send",
    "pending": "waiting for dispatch", "deferred": "deferred (waiting for a later time)",
    "suppressed": "suppressed (not sent)", "cancelled": "cancelled", "sent": "sent (provider accepted)",
    "delivered": "delivered", "opened": "opened (unique, by people)",
    "machine_opened": "machine opens (privacy proxies, not counted as opens)", "clicked": "clicked (unique)",
    "bounced": "bounced", "dropped": "dropped by the provider", "spam_reports": "spam reports",
    "unsubscribed": "unsubscribed", "failed": "failed", "reconcile": "to reconcile (after a crash)",
    "replies": "replied to", "phone_tasks_opened": "phone tasks opened",
    "phone_tasks_done_within_sla": "phone tasks done within SLA",
}
FUNNEL_ORDER = ("audience", *STAGES, "phone_tasks_opened", "phone_tasks_done_within_sla")
BREAKDOWN_COLUMNS = ("messages", "sent", "delivered", "opened", "clicked", "bounced", "spam_reports",
                     "unsubscribed", "replies")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def funnel_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    funnel = report["funnel"]
    rows = [(FUNNEL_LABELS[k], str(funnel[k])) for k in FUNNEL_ORDER]
    for status in ("deferred", "suppressed"):
        for code, n in funnel[f"{status}_by_reason"].items():
            rows.append((f"  {status}: {code}", str(n)))
    return rows


def rate_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = report["rates"]
    return [(r.name.replace("_", " "), percent(found[r.name]["value"]),
             f"{found[r.name]['numerator']} / {found[r.name]['denominator']}: {r.meaning}") for r in RATES]


def timing_text(report: dict[str, Any]) -> str:
    t = report["timing"]["send_to_delivered"]
    if not t["measured"]:
        return "Time from send to delivered: no delivered message with both times yet."
    return (f"Time from send to delivered over {t['measured']} messages: median {t['median_seconds']:.1f} s, "
            f"95th percentile {t['p95_seconds']:.1f} s.")


def breakdown_rows(report: dict[str, Any], dimension: str) -> list[list[str]]:
    rows = []
    for row in report["breakdown"].get(dimension, []):
        counts, rates = row["counts"], row["rates"]
        rows.append([row["value"], *(str(counts[k]) for k in BREAKDOWN_COLUMNS),
                     percent(rates["open_rate"]["value"]), percent(rates["click_rate"]["value"])])
    return rows


BREAKDOWN_HEADER = ("value", "msgs", "sent", "deliv", "opened", "clicked", "bounced", "spam", "unsub",
                    "replied", "open %", "click %")


def flag_rows(report: dict[str, Any], raised_only: bool = False) -> list[list[str]]:
    return [[f["channel"], f["rule"].replace("_", " "), percent(f["value"]), percent(f["threshold"]),
             f"{f['numerator']} / {f['denominator']}", "RAISED" if f["raised"] else "ok"]
            for f in report["flags"] if f["raised"] or not raised_only]


FLAG_HEADER = ("channel", "rule", "rate (30 days)", "threshold", "count", "state")


def with_interval(rate: dict[str, Any] | None) -> str:
    """``12.50% (9.10-16.90%)``: a rate and its 95% interval; "-" when there is nothing to divide by."""
    if not rate or rate["value"] is None:
        return "-"
    return f"{percent(rate['value'])} [{rate['low'] * 100:.1f}, {rate['high'] * 100:.1f}]"


def _lift(lift: dict[str, Any] | None) -> str:
    if not lift:
        return "-"
    relative = "" if lift["relative"] is None else f"{lift['relative'] * 100:+.1f}%, "
    p = "-" if lift["p_value"] is None else f"{lift['p_value']:.3g}"
    return f"{relative}p={p}{' *' if lift['significant'] else ''}"


def _scores(row: dict[str, Any]) -> str:
    parts = []
    if row.get("csat"):
        parts.append(f"CSAT {percent(row['csat']['csat']['value'])} of {row['csat']['answers']}")
    if row.get("nps"):
        parts.append(f"NPS {row['nps']['nps']:+g} of {row['nps']['answers']}")
    return ", ".join(parts) or "-"


VARIANT_HEADER = ("variant", "customers", "delivered", "clicks", "unsubscribes", "replies", "surveys",
                  "conversions", "lift vs holdout")


def variant_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = report["variants"]["rows"]
    if not rows:
        return [], []
    out = []
    for r in rows:
        rates = r["rates"]
        conversions = "-" if r["conversions"] is None else \
            f"{r['conversions']} = {with_interval(rates['conversion_rate'])}"
        out.append([r["variant"], str(r["customers"]), str(r["delivered"]),
                    f"{r['clicked']} = {with_interval(rates['click_rate'])}",
                    f"{r['unsubscribed']} = {percent(rates['unsubscribe_rate']['value'])}",
                    f"{r['replies']} = {percent(rates['reply_rate']['value'])}", _scores(r), conversions,
                    _lift(r.get("lift_over_holdout"))])
    return list(VARIANT_HEADER), out


VARIANT_LEGEND = ("Rates in %, with the 95% interval in brackets; clicks, unsubscribes and replies of "
                  "delivered, conversions of customers; lift: relative to the holdout, * when significant.")


def verdict_text(report: dict[str, Any]) -> str:
    """The experiment's verdict in one sentence (empty without variants)."""
    v = report["variants"]
    if not v["rows"]:
        return ""
    metric = v["metric"].replace("_", " ")
    goal = f" (goal: {v['goal']['event']}, {v['goal']['window']})" if v.get("goal") else ""
    if v["winner"] is None:
        return f"Winner on {metric}{goal}: not enough data."
    worst = max((t["p_value"] for t in v["tests"]), default=None)
    return f"Winner on {metric}{goal}: {v['winner']} (p <= {worst:.3g} against every other group)."


SURVEY_HEADER = ("by", "value", "CSAT (share 4-5, 95% CI)", "CSAT answers", "NPS", "NPS answers")


def survey_rows(report: dict[str, Any]) -> list[list[str]]:
    section = report.get("surveys") or {}
    rows = []
    for dimension, groups in (section.get("by") or {}).items():
        for g in groups:
            csat, nps = g["csat"], g["nps"]
            rows.append([dimension, g["value"], with_interval(csat["csat"]) if csat else "-",
                         str(csat["answers"]) if csat else "0", f"{nps['nps']:+g}" if nps else "-",
                         str(nps["answers"]) if nps else "0"])
    return rows


def escape_markdown(text: str) -> str:
    for ch in "\\`*_{}[]<>()#+-.!|":
        text = text.replace(ch, "\\" + ch)
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(escape_markdown(h) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape_markdown(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown (the Prefect artifact)."""
    parts = [f"# Report: {escape_markdown(report['slice']['title'])}",
             f"Generated {escape_markdown(report['generated_at'][:16])} UTC.", "## Funnel",
             markdown_table(("stage", "count"), funnel_rows(report)), "## Rates",
             markdown_table(("rate", "value", "of"), rate_rows(report)), escape_markdown(timing_text(report))]
    for dimension in report["breakdown"]:
        rows = breakdown_rows(report, dimension)
        if len(rows) > 1:
            parts += [f"## By {dimension}", markdown_table(BREAKDOWN_HEADER, rows)]
    header, rows = variant_rows(report)
    parts += ["## Variants",
              markdown_table(header, rows) if rows else escape_markdown(report["variants"]["note"])]
    if rows:
        parts += [escape_markdown(verdict_text(report)), escape_markdown(report["variants"]["note"])]
    surveys = survey_rows(report)
    if surveys:
        parts += ["## Survey answers", markdown_table(SURVEY_HEADER, surveys),
                  escape_markdown(report["surveys"]["note"])]
    parts += ["## Sender health (last 30 days)", markdown_table(FLAG_HEADER, flag_rows(report))]
    parts += ["## Notes", "\n".join(f"- {escape_markdown(n)}" for n in report["notes"])]
    return "\n\n".join(parts) + "\n"


def channel_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per channel with its counts and rates (the Prefect table artifact)."""
    return [{"channel": row["value"], **{k: row["counts"][k] for k in BREAKDOWN_COLUMNS},
             **{r.name: percent(row["rates"][r.name]["value"]) for r in RATES}}
            for row in report["breakdown"]["channel"]]

