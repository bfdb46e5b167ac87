"""Concurrent webhooks about one address: every request is answered 200, and one suppression.

Providers deliver events in parallel: a bounce and a drop for one email address, "STOP" and
"stop." from one phone, arrive together. Both must be accepted (a 500 makes the provider retry,
and an error in the middle would lose the other half of a batch) and the address suppressed once.
"""

from __future__ import annotations

import threading

from sqlmodel import select

from orchestrator.consent import suppress_address
from orchestrator.db import session_scope
from orchestrator.models import Suppression


def test_two_writers_suppressing_one_address_at_once_both_succeed_and_one_row_remains(pg_url):
    """The race made deterministic: the second writer starts while the first has inserted and
    not yet committed (on SQLite writers are serialised, so only PostgreSQL can race)."""
    first_wrote, release_first = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        try:
            with session_scope() as session:
                outcomes["first"] = suppress_address(session, "email", "ada@example.com", "bounce", "a")
                first_wrote.set()
                release_first.wait(10)
        except Exception as exc:  # recorded, then asserted on
            outcomes["first"] = exc

    def second() -> None:
        try:
            with session_scope() as session:
                outcomes["second"] = suppress_address(session, "email", "ada@example.com", "dropped", "b")
        except Exception as exc:
            outcomes["second"] = exc

    one = threading.Thread(target=first)
    one.start()
    assert first_wrote.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)  # the second waits on the first's uncommitted row (before: it went ahead)
    release_first.set()
    one.join(10)
    two.join(10)

    assert outcomes == {"first": True, "second": False}
    with session_scope() as session:
        rows = session.exec(select(Suppression)).all()  # type: ignore[call-overload]
    assert [(r.address, r.reason) for r in rows] == [("ada@example.com", "bounce")]

