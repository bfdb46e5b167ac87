"""Urgent work holds bulk work back: while an outage notice starts and sends, campaigns wait.

The budget's lane marks (``budget.take``) keep bulk messages off a lane once urgent messages use
it; but before its first message an urgent notice must be decided and reserved, and on a busy
machine a campaign's chunks (their SQL, their provider calls, SQLite's one writer) delayed that by
seconds. So urgent work also marks one row of the rate budget, ``URGENT_WORK``: when it is
triggered (``announce``), renewed every second while it runs (``holding``), cleared when it is
done. Bulk work looks at the mark before each chunk it reserves or dispatches and waits while it
holds (``yield_to_urgent_work``), at most ``MAX_YIELD_SECONDS`` at a time so bulk work never stops
for good; a notice that dies stops holding anything after ``HOLD_SECONDS``.

A mark is a row in the database, so it holds across processes and machines (the web app, a
command, Prefect workers); announcing and asking never fail urgent or bulk work: a database that
cannot answer means no hold.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from orchestrator.pacing import budget

log = logging.getLogger(__name__)

URGENT_WORK = "*urgent-work"  # not a possible rate or channel name
HOLD_SECONDS = 5.0  # how long a mark holds without being renewed
RENEW_SECONDS = 1.0  # how often running urgent work renews it
MAX_YIELD_SECONDS = 60.0  # the longest bulk work waits at one checkpoint
POLL_SECONDS = 0.1


def announce(seconds: float = HOLD_SECONDS, *, url: str | None = None) -> None:
    """Urgent work is running (or about to): bulk work waits for ``seconds`` unless renewed."""
    try:
        budget.hold(URGENT_WORK, time.time() + seconds, url=url)
    except Exception as exc:  # holding bulk work back speeds urgent work up; it must never stop it
        log.warning("could not ask bulk work to wait for urgent work: %s", exc)


def announce_soon() -> None:
    """``announce`` from a thread of its own: the caller (a trigger about to create or load the
    notice) goes on without waiting for the database's writer."""
    threading.Thread(target=announce, name="announce-urgent-work", daemon=True).start()


@contextmanager
def holding(*, url: str | None = None, every: float = RENEW_SECONDS) -> Iterator[None]:
    """Marks urgent work for the whole block: renewed from a thread of its own (the block never
    waits for the database's writer to renew it), cleared at the end."""
    stop = threading.Event()

    def renew() -> None:
        while True:
            announce(url=url)
            if stop.wait(every):
                return

    thread = threading.Thread(target=renew, name="urgent-work-mark", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        done(url=url)


def done(*, url: str | None = None) -> None:
    """Urgent work has finished: bulk work goes on at once (another urgent run renews its own mark)."""
    try:
        budget.hold(URGENT_WORK, 0.0, url=url)
    except Exception as exc:
        log.warning("could not clear the urgent work mark (it lapses by itself): %s", exc)


def yield_to_urgent_work(*, url: str | None = None, max_wait: float = MAX_YIELD_SECONDS,
                         clock: Callable[[], float] = time.time,
                         sleep: Callable[[float], None] = time.sleep) -> float:
    """Bulk work's checkpoint: waits while urgent work holds the mark (at most ``max_wait``
    seconds); returns the seconds waited."""
    started = clock()
    while True:
        try:
            until = budget.held_until(URGENT_WORK, url=url)
        except Exception as exc:
            log.debug("could not read the urgent work mark: %s", exc)
            return clock() - started
        now = clock()
        if until <= now or now - started >= max_wait:
            return now - started
        sleep(min(POLL_SECONDS, until - now, max_wait - (now - started)))
