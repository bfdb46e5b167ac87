"""A channel adapter test double: records every message it is given and answers as it is told."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import ClassVar

from channels.base import (
    Limits,
    OutboundMessage,
    Permanent,
    ResultStatus,
    SendResult,
    Transient,
)

Answer = Transient | Permanent | Exception | None


class RecordingAdapter:
    """Accepts everything unless ``answers`` (by our message id) or ``answer`` say otherwise.

    An ``Exception`` answer is raised from ``send`` (after recording the batch, as a provider
    call that broke half way would). Thread-safe, so concurrent dispatchers can share one.
    """

    name: ClassVar[str] = "recording"
    channel: ClassVar[str] = "email"
    provider: ClassVar[str] = "recorder"

    def __init__(self, channel: str = "email", max_batch: int = 100,
                 answer: Callable[[OutboundMessage], Answer] | None = None) -> None:
        self.channel = channel  # type: ignore[misc]
        self.limits = Limits(max_batch=max_batch)
        self.answers: dict[int, Answer] = {}
        self.answer = answer
        self.sent: list[OutboundMessage] = []
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        with self._lock:
            self.sent.extend(batch)
            self.batches.append(len(batch))
        results = []
        for message in batch:
            answer = self.answers.get(message.message_id)
            if answer is None and self.answer is not None:
                answer = self.answer(message)
            if isinstance(answer, Exception):
                raise answer
            if answer is None:
                results.append(SendResult(message.message_id, ResultStatus.accepted, self.provider,
                                          provider_message_id=f"rec-{message.message_id}"))
            else:
                status = ResultStatus.transient if isinstance(answer, Transient) else ResultStatus.permanent
                results.append(SendResult(message.message_id, status, self.provider, error=answer))
        return results

    def calls_per_message(self) -> Counter[int]:
        with self._lock:
            return Counter(m.message_id for m in self.sent)

    def close(self) -> None:
        pass
