"""The contact policy engine: send now, defer, escalate to a phone task, or suppress, and why."""

from orchestrator.policy.config import Policy, PolicyError, load_policy, parse_policy
from orchestrator.policy.decide import decide, decide_for_customer
from orchestrator.policy.intents import CustomerFacts, Decision, HistoryEntry, Intent
from orchestrator.policy.reserve import ReservedRow, ReserveResult, decide_chunk, load_facts, reserve_chunk

__all__ = [
    "CustomerFacts",
    "Decision",
    "HistoryEntry",
    "Intent",
    "Policy",
    "PolicyError",
    "ReserveResult",
    "ReservedRow",
    "decide",
    "decide_chunk",
    "decide_for_customer",
    "load_facts",
    "load_policy",
    "parse_policy",
    "reserve_chunk",
]
