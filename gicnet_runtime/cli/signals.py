"""SIGINT and SIGTERM during a long command: finish the current step, save, then stop.

:func:`graceful_stop` replaces the two signals' handlers for the length of a ``with``
block by one that only records the request; the command polls ``requested()`` between
its steps, saves its checkpoint and raises :class:`gicnet_runtime.errors.Interrupted`
(exit status 130, with how to resume).  A second signal while the first is being handled
stops at once (the previous checkpoint stays valid).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

#: The signals a long command stops on gracefully.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def graceful_stop() -> Iterator[Callable[[], bool]]:
    """Yield ``requested()``: whether SIGINT or SIGTERM arrived since the block began."""
    seen: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(signum, frame) -> None:
        if seen:  # a second request: stop now
            raise KeyboardInterrupt
        seen.append(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield lambda: bool(seen)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
