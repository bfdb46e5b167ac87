"""What the policy engine takes in (intents, customer facts) and gives back (decisions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

Outcome = Literal["send", "defer", "suppress"]


@dataclass
class Intent:
    """We want to tell ``customer_id`` something about ``topic``.

    ``dedupe_key`` identifies the message for this customer: reserving it again is a no-op.
    ``data`` feeds the template; ``data["severity"]`` also selects high-touch rules.
    """

    customer_id: int
    topic: str
    template: str
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)
    tone: str | None = None
    send_time: str = "now"  # "now" | "HH:MM" (customer's local time) | ISO datetime
    earliest: datetime | None = None
    deadline: datetime | None = None
    campaign_id: int | None = None
    incident_id: int | None = None
    channels: list[str] | None = None  # restricts / overrides the topic's channel list
    variant: str | None = None  # experiment variant, recorded on the ledger row
    holdout_of: str | None = None  # campaign whose holdout group this customer is in: nothing is sent


@dataclass
class Decision:
    customer_id: int
    outcome: Outcome
    channel: str
    tone: str
    send_at: datetime
    reason_codes: list[str]
    reason_text: str
    topic: str = ""
    dedupe_key: str = ""
    priority: int = 0
    message_id: int | None = None
    high_touch: str | None = None  # name of the high-touch rule for an additional phone row

    @property
    def status(self) -> str:
        return {"send": "planned", "defer": "deferred", "suppress": "suppressed"}[self.outcome]


@dataclass(slots=True)
class HistoryEntry:
    """A ledger row that holds a cap slot."""

    topic: str
    channel: str
    send_at: datetime


@dataclass(slots=True)
class CustomerFacts:
    """Everything the decision needs to know about one customer, loaded in bulk per chunk."""

    id: int
    tier: str = "standard"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    addresses: dict[str, str | None] = field(default_factory=dict)  # channel -> address
    suppressed: dict[str, str] = field(default_factory=dict)  # channel -> suppression reason
    # (customer, channel, topic) -> state, as orchestrator.consent.current_consent returns it
    consent: dict[tuple[int, str, str], str] = field(default_factory=dict)
    preferred_channels: list[str] = field(default_factory=list)
    frequency: str = "any"
    quiet: tuple[time, time] | None = None  # personal quiet hours, local
    do_not_contact: bool = False
    history: list[HistoryEntry] = field(default_factory=list)
    # channel -> messages of the channel's sunset topics sent there within its window, none read
    unengaged: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IntentRecipe:
    """Everything of an intent but its customer, and the campaign experiment that picks variants:
    what a chunk task turns into intents for the customers of its id range."""

    topic: str
    template: str
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)
    tone: str | None = None
    send_time: str = "now"
    campaign_id: int | None = None
    incident_id: int | None = None
    experiment: Any = None  # orchestrator.experiments.Experiment
    campaign: str = ""

    def intents(self, customer_ids: list[int]) -> list[Intent]:
        out = []
        for cid in customer_ids:
            intent = Intent(customer_id=cid, topic=self.topic, template=self.template,
                            dedupe_key=self.dedupe_key, data=self.data, tone=self.tone,
                            send_time=self.send_time, campaign_id=self.campaign_id,
                            incident_id=self.incident_id)
            out.append(self.experiment.apply(intent, self.campaign) if self.experiment else intent)
        return out
