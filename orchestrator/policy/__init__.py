"""The contact policy engine: send now, defer, escalate to a phone task, or suppress, and why."""

from orchestrator.policy.config import Policy, PolicyError, load_policy, parse_policy
from orchestrator.policy.decide import decide, decide_for_customer
from orchestrator.policy.explain import ExplainedDecision, UnknownCustomer, explain_customer
from orchestrator.policy.intents import CustomerFacts, Decision, HistoryEntry, Intent
from orchestrator.policy.plan import PlanSummary, plan_audience
from orchestrator.policy.reserve import ReservedRow, ReserveResult, decide_chunk, load_facts, reserve_chunk

__all__ = [
    "CustomerFacts",
    "Decision",
    "ExplainedDecision",
    "HistoryEntry",
    "Intent",
    "PlanSummary",
    "Policy",
    "PolicyError",
    "ReserveResult",
    "ReservedRow",
    "UnknownCustomer",
    "decide",
    "decide_chunk",
    "decide_for_customer",
    "explain_customer",
    "load_facts",
    "load_policy",
    "parse_policy",
    "plan_audience",
    "reserve_chunk",
]
