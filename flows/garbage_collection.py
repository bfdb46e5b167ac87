"""How our processes use Python's cyclic garbage collector: pipelines run with it looking less
often, and what a command loads for good (Prefect, the flows) is kept out of its reach.

A pipeline allocates millions of short-lived containers (rows, facts, contexts, messages), and
a chunk's objects live long enough to survive a young collection or two. With Python's default
thresholds (a young collection every 700 net allocations) a 100,000-customer campaign ran 9,000
collections, 57 of them over every object in the process (Prefect's and ours, ~220,000): 10 s of
a 40 s campaign, the GIL held throughout, so every other thread waited too. Reference counting
frees these objects anyway; the collector is only needed for cycles, which the pipeline does not
build in bulk. So while a pipeline runs the youngest generation is collected every
``ORCH_PIPELINE_GC_THRESHOLD`` net allocations instead (the older generations keep their
multipliers, so full collections still come: 4 instead of 57 in that campaign, which took 29 s
instead of 38); 0 leaves Python's setting alone.

The thresholds are the process's: the first pipeline to start sets them and the last to finish
puts back what was there before, so pipelines running side by side (in the web app, a served
process) share one setting.

Loading Prefect and a flow makes some 160,000 objects that live as long as the process. The
collector walked them while they were made: 404 collections, 0.3 s of the 1.7 s that importing
``flows.outage`` took, on the way to an in-process outage notice's first message. So
``loading_for_good`` loads with the collector off, then freezes what was made (``gc.freeze``:
reference counting still frees those objects; no later collection walks them).
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.settings import get_settings

_lock = threading.Lock()
_running = 0
_before: tuple[int, int, int] | None = None


@contextmanager
def collecting_less_often(threshold: int | None = None) -> Iterator[None]:
    """Runs the block with the youngest generation collected every ``threshold`` net allocations
    (``ORCH_PIPELINE_GC_THRESHOLD`` unless given), unless Python's own threshold is already larger
    (or ``threshold`` is 0)."""
    global _running, _before
    if threshold is None:
        threshold = get_settings().pipeline_gc_threshold
    with _lock:
        if _running == 0:
            current = gc.get_threshold()
            if threshold > current[0]:
                _before = current
                gc.set_threshold(threshold, *current[1:])
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _before is not None:
                gc.set_threshold(*_before)
                _before = None


@contextmanager
def loading_for_good() -> Iterator[None]:
    """Runs the block, which imports modules the process keeps (Prefect, a flow), with the collector
    off; then, if it loaded anything, moves every object made so far out of the collector's reach."""
    was_enabled = gc.isenabled()
    modules_before = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > modules_before:  # loaded again in the same process: nothing new to freeze
            gc.freeze()
        if was_enabled:
            gc.enable()
