"""The interpreter's cycle collector paused while the policy plans: a process-wide switch, so it
is the caller's (the collector's) and never the pure policy's."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0
_was_enabled = False


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while planning: the plan allocates a few objects per
    container and image and makes no cycles, and each collection the allocations set off would
    walk the whole (large) snapshot again; on 100k containers that was a third of the plan time.

    Counted, so that plans in two threads at once (the scheduler's) leave it as it was found:
    the first to enter turns it off, the last to leave turns it back on if it was on."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()
