"""Bulk work yields the CPU to urgent work on the same machine.

Claim order, rate budgets and adapter capacity put urgent messages first, and bulk chunks wait
while a notice runs (``orchestrator.pacing.urgency``); the CPU is the one shared resource they do
not cover within a chunk already under way. A campaign keeps a core busy while it runs, and
on a machine whose cores are all taken an outage notice started meanwhile (in the web app, or by a
command) waited its turn for the CPU: seconds before its first message. So a bulk flow runs its
work at a lower CPU priority (``ORCH_BULK_CPU_NICENESS``, the Unix niceness added; 0 turns it off):
the calling thread and every thread it starts meanwhile (chunk tasks, channel lanes, provider
calls) inherit it, so everything else on the machine, urgent notices first, is served before it.
When nothing else wants the CPU the campaign runs as fast as before.

Linux sets priorities per thread, which is what makes this safe inside a shared process (the web
app, a test run): other threads keep theirs, and the caller's priority is restored afterwards where
the process may raise it again. Elsewhere this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
MAX_NICENESS = 19


@contextmanager
def yielding_cpu(niceness: int) -> Iterator[None]:
    """Runs the block (and the threads it starts) ``niceness`` steps below the caller's CPU priority."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        yield
        return
    thread = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICENESS, before + niceness))
    except OSError as exc:  # a sandbox that forbids it: the work runs as it is
        log.info("bulk work keeps its CPU priority (%s)", exc)
        yield
        return
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, thread, before)
        except PermissionError:  # only a privileged process may raise its priority again
            log.debug("the CPU priority of this thread stays lowered (niceness %d)", before + niceness)
