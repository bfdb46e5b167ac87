"""Bounded concurrency for provider adapters: a thread pool with one SDK client per worker thread.

A client per thread lets each worker keep its HTTP connection alive without sharing
non-thread-safe SDK state; the pool size bounds the requests in flight at the provider.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from channels.base import OutboundMessage, ResultStatus, SendResult, Transient

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")


class PerThreadPool(Generic[C]):
    """Runs provider calls over a batch, at most ``workers`` at a time, each thread with its own client."""

    def __init__(self, make_client: Callable[[], C], workers: int, name: str):
        self._make_client = make_client
        self._workers = max(1, workers)
        self._name = name
        self._local = threading.local()
        self._clients: list[C] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def client(self) -> C:
        """The calling thread's client, created on first use."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._make_client()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def map(
        self,
        provider: str,
        send_one: Callable[[C, OutboundMessage], SendResult],
        batch: list[OutboundMessage],
    ) -> list[SendResult]:
        def failed(message: OutboundMessage, exc: Exception) -> SendResult:
            log.exception("%s adapter failed on message %s", provider, message.message_id)
            return SendResult(message.message_id, ResultStatus.transient, provider,
                              error=Transient(f"adapter_error:{type(exc).__name__}"))

        return self.run_each(send_one, batch, failed)

    def run_each(self, work: Callable[[C, T], R], items: list[T], on_error: Callable[[T, Exception], R]
                 ) -> list[R]:
        """``work(client, item)`` for every item, at most ``workers`` at a time, results in order;
        an exception becomes ``on_error(item, exc)`` (a defect must not lose the rest)."""
        def run(item: T) -> R:
            try:
                return work(self.client(), item)
            except Exception as exc:
                return on_error(item, exc)

        if len(items) <= 1 or self._workers == 1:
            return [run(item) for item in items]
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return list(self._executor.map(run, items))

    def clients(self) -> list[C]:
        with self._lock:
            return list(self._clients)

    def close(self, close_client: Callable[[C], None] | None = None) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            clients, self._clients = self._clients, []
        if close_client is not None:
            for client in clients:
                close_client(client)
        self._local = threading.local()
