"""Send: a channel's ready messages through its adapter, in batches of ``adapter.limits.max_batch``.

Concurrency inside a batch is the adapter's job. What the provider answered becomes ledger
changes; what never reached it goes back to the queue with its attempt given back. The pacer
(``orchestrator.pacing``) cuts the batches to the lane's send rates, highest priority first: a
batch goes when its slot comes, and messages whose slot is further away wait in the ledger
(``pace:<rate>``). A provider's 429 slows the lane down for every process sharing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from channels.base import ChannelAdapter, ConfigurationError, SendResult, Transient
from orchestrator.dispatch.compose import ReadyMessage
from orchestrator.ledger.changes import (
    LedgerChange,
    change_for_result,
    is_unauthorized,
    paced,
    settled,
    slowed_down,
    unauthorized_text,
)
from orchestrator.ledger.queue import ClaimedMessage
from orchestrator.ledger.retry import RetryPolicy
from orchestrator.models import MessageStatus
from orchestrator.pacing.pacer import Pacer, Wait
from orchestrator.policy.rates import Rates
from orchestrator.privacy import redact_text
from orchestrator.reasons import PACE, RECONCILE

RATE_LIMITED = "rate_limited"  # the Transient reason adapters give a provider's 429

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """Where the send step leaves its outcomes (``ClaimedBatch`` in ``dispatch.run``)."""

    def record(self, changes: list[LedgerChange], sent: list[ReadyMessage]) -> None: ...

    def release(self, channel: str, unsent: list[ClaimedMessage], why: str, *, configuration: bool = True
                ) -> None: ...


def send_channel(channel: str, items: list[ReadyMessage], *, adapter_for: Callable[[str], ChannelAdapter],
                 recorder: Recorder, clock: Callable[[], datetime], retry: RetryPolicy,
                 handed: set[int], pacer: Pacer | None = None) -> None:
    """Sends ``items`` batch by batch; ``handed`` collects every message given to the adapter.

    A configuration problem (no credentials, or credentials the provider refuses) stops the
    channel: its later messages go back to the queue unsent. An adapter that raises mid-call
    leaves its batch to reconciliation: the provider may have the messages. Without a ``pacer``
    only rates the adapter declares apply.
    """
    pacer = pacer or Pacer(Rates())
    try:
        adapter = adapter_for(channel)
        size = max(1, adapter.limits.max_batch)
    except ConfigurationError as exc:
        recorder.release(channel, [i.message for i in items], f"configuration: {exc}")
        return
    done: set[int] = set()

    def rest() -> list[ClaimedMessage]:
        return [i.message for i in items if i.message.id not in done]

    for part in pacer.paced(channel, adapter, items, topic_of=lambda i: i.message.topic,
                            priority_of=lambda i: i.message.priority, outbound_of=lambda i: i.outbound,
                            size=size):
        if isinstance(part, Wait):
            recorder.record([paced(i.message.id, part.reason, at)
                             for i, at in zip(part.items, part.send_at, strict=True)], [])
            done.update(i.message.id for i in part.items)
            continue
        batch = part.items
        try:
            handed.update(i.message.id for i in batch)
            results = adapter.send([item.outbound for item in batch])
        except ConfigurationError as exc:  # raised before anything is sent
            recorder.release(channel, rest(), f"configuration: {exc}")
            return
        except Exception as exc:  # the adapter broke mid-call: the provider may have the messages
            log.error("the %s adapter raised %s; %d message(s) need reconciling", channel,
                      type(exc).__name__, len(batch))
            why = redact_text(f"adapter raised {type(exc).__name__}: {exc}")
            recorder.record([settled(i.message, MessageStatus.reconcile, RECONCILE.code("adapter_error"), why,
                                     attempted=True) for i in batch], [])
            done.update(i.message.id for i in batch)
            recorder.release(channel, rest(), why, configuration=False)
            return
        now = clock()
        changes = changes_for_results(batch, results, now, retry)
        limited = {r.message_id: r.error.retry_after for r in results
                   if isinstance(r.error, Transient) and r.error.reason == RATE_LIMITED}
        if limited:
            pacer.rate_limited(part.rules, max((s for s in limited.values() if s is not None), default=None))
            lane = next((PACE.code(r.name) for r in part.rules if r.lane), PACE.code(channel))
            attempts = {i.message.id: i.message.attempts for i in batch}
            changes = [slowed_down(c, lane, limited[c.message_id], now, attempts=attempts[c.message_id],
                                   retry=retry) if c.message_id in limited else c for c in changes]
        recorder.record(changes, batch)
        done.update(i.message.id for i in batch)
        refused = next((r for r in results if is_unauthorized(r)), None)
        if refused is not None:  # every later batch would be refused the same way
            recorder.release(channel, rest(), unauthorized_text(refused))
            return


def changes_for_results(batch: list[ReadyMessage], results: list[SendResult], now: datetime,
                        retry: RetryPolicy) -> list[LedgerChange]:
    """One ledger change per message of the batch; a message the adapter gave no result for is in doubt."""
    by_id = {r.message_id: r for r in results}
    changes = []
    for item in batch:
        m = item.message
        result = by_id.get(m.id)
        if result is None:
            changes.append(settled(m, MessageStatus.reconcile, RECONCILE.code("no_result"),
                                   "the adapter returned no result for this message", attempted=True))
            continue
        changes.append(change_for_result(result, attempts=m.attempts, deadline=m.deadline, now=now,
                                         retry=retry))
    return changes
