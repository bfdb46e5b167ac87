"""Pacing a channel's ready messages: which go now (after a short wait for their slot), which wait.

The send step hands a channel's messages to ``Pacer.paced`` and gets back, in order, ``Go`` slices
(send them now: their slots are taken and the pacer has slept until the first one) and at most one
``Wait`` per group of messages (defer them: the next free slot is further away than this sender
will wait). Messages are taken in priority order; urgent messages (``rates.urgent_priority``) will
wait longer in-process for a slot than bulk ones, and mark their channel so bulk traffic yields.

The rates that apply to a message are the policy's for its channel or adapter, and for its topic;
an adapter may declare its provider's default rate (``Limits.rate_per_second``), which a rate in
the policy for that channel or adapter replaces. With no rate at all nothing touches the database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from orchestrator.ledger.queue import last_waiting_at
from orchestrator.pacing.budget import Demand, slow_down, take
from orchestrator.policy.rates import RateRule, Rates
from orchestrator.reasons import PACE

T = TypeVar("T")
BULK_MAX_WAIT = 2.0  # seconds a bulk batch may wait for its slots; the rest waits in the ledger
URGENT_MAX_WAIT = 10.0


@dataclass
class Go(Generic[T]):
    items: list[T]
    rules: list[RateRule]  # the rates they were paced by (a 429 slows the provider lanes among them)


@dataclass
class Wait(Generic[T]):
    items: list[T]
    reason: str  # "pace:<rate name>" (or "pace:urgent": bulk yielding to urgent traffic)
    send_at: list[datetime]  # when each is expected to go at the rates in force


class Pacer:
    """Takes slots from the shared budget (``pacing.budget``) for one dispatch."""

    def __init__(self, rates: Rates, *, url: str | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, bulk_max_wait: float = BULK_MAX_WAIT,
                 urgent_max_wait: float = URGENT_MAX_WAIT) -> None:
        self.rates, self.url, self.clock, self.sleep = rates, url, clock, sleep
        self.bulk_max_wait, self.urgent_max_wait = bulk_max_wait, urgent_max_wait

    def rules_for(self, channel: str, adapter: Any, topic: str) -> list[RateRule]:
        return self.rates.for_lane(channel, adapter, topic)

    def urgent(self, priority: int) -> bool:
        return priority >= self.rates.urgent_priority

    def paced(self, channel: str, adapter: Any, items: Sequence[T], *, topic_of: Callable[[T], str],
              priority_of: Callable[[T], int], outbound_of: Callable[[T], Any], size: int
              ) -> Iterator[Go[T] | Wait[T]]:
        """Slices of at most ``size`` messages, highest priority first (see the module docstring)."""
        ordered = sorted(items, key=lambda i: -priority_of(i))
        groups: list[tuple[tuple[str, ...], bool, list[RateRule], list[T]]] = []
        for item in ordered:
            rules = self.rules_for(channel, adapter, topic_of(item))
            key = (tuple(r.name for r in rules), self.urgent(priority_of(item)))
            if groups and groups[-1][:2] == key:
                groups[-1][3].append(item)
            else:
                groups.append((key[0], key[1], rules, [item]))
        for _, urgent, rules, group in groups:
            if not rules and not self.rates.rules:  # nothing declared anywhere: no pacing at all
                for start in range(0, len(group), size):
                    yield Go(group[start : start + size], [])
                continue
            yield from self._pace_group(channel, adapter, group, rules, urgent, outbound_of, size)

    def rate_limited(self, rules: list[RateRule], retry_after: float | None) -> None:
        """A provider answered 429 to messages paced by ``rules``: its lanes slow down (rates per
        set of topics do not: the provider did not set them)."""
        slow_down([r.name for r in rules if r.lane], retry_after, now=self.clock(), url=self.url)

    def _pace_group(self, channel: str, adapter: Any, group: list[T], rules: list[RateRule], urgent: bool,
                    outbound_of: Callable[[T], Any], size: int) -> Iterator[Go[T] | Wait[T]]:
        # Claimed messages are ``sending`` while they wait: a batch waits this long at most in all.
        deadline = self.clock() + (self.urgent_max_wait if urgent else self.bulk_max_wait)
        pending = group
        while pending:
            n = min(size, len(pending))
            demands = self._demands(rules, adapter, [outbound_of(i) for i in pending[:n]])
            for demand in demands:  # a slice spends at most one burst of any of its rates
                if demand.units > demand.rule.burst and n > 1:
                    n = max(1, min(n, int(n * demand.rule.burst / demand.units)))
            demands = self._demands(rules, adapter, [outbound_of(i) for i in pending[:n]])
            now = self.clock()
            slot = take(demands, channel=channel, urgent=urgent, max_wait=max(0.0, deadline - now), now=now,
                        url=self.url)
            if slot.at is None:
                # Spread at the declared rates: a lane slowed by a 429 grows back within seconds, and
                # the messages are claimed by their expected times (``dispatch.run``).
                per_unit = max((1.0 / d.rule.per_second for d in demands), default=slot.per_unit)
                step = per_unit / max(1.0, _messages_per_unit(demands, n))
                first = max(slot.free_at, self._queue_end(rules, slot.held_by, channel) + step)
                yield Wait(pending, PACE.code(slot.held_by), _spread(first, step, len(pending)))
                return
            delay = slot.at - self.clock()
            if delay > 0:
                self.sleep(delay)
            yield Go(pending[:n], rules)
            pending = pending[n:]

    def _queue_end(self, rules: list[RateRule], held_by: str | None, channel: str) -> float:
        """When the last message already waiting in the ledger for the same rate is expected to go
        (0 if none): later ones queue behind it, so every expected time counts those ahead."""
        rule = next((r for r in rules if r.name == held_by), None)
        if rule is None:
            return 0.0
        last = last_waiting_at(PACE.code(rule.name), after=_as_datetime(self.clock()),
                               channel=channel if rule.lane else None, url=self.url)
        return _as_datetime_epoch(last) if last is not None else 0.0

    @staticmethod
    def _demands(rules: list[RateRule], adapter: Any, outbound: list[Any]) -> list[Demand]:
        count_requests = getattr(adapter, "requests_for", None)
        out = []
        for rule in rules:
            units = len(outbound)
            if rule.unit == "requests" and count_requests is not None:
                units = count_requests(outbound)
            out.append(Demand(rule, float(units)))
        return out


def _messages_per_unit(demands: list[Demand], n: int) -> float:
    units = max((d.units for d in demands), default=0.0)
    return n / units if units else 1.0


def _spread(first: float, step: float, count: int) -> list[datetime]:
    """When each of ``count`` waiting messages is expected to go: ``step`` apart from ``first``."""
    return [datetime.fromtimestamp(first + math.floor(i) * step, UTC) for i in range(count)]


def _as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _as_datetime_epoch(at: datetime) -> float:
    """The ledger's naive UTC times (SQLite) and aware ones (PostgreSQL) alike, as epoch seconds."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()
