"""Progress of long work on stderr, on a terminal and off it (logs, batch jobs): the one
progress reporter of the commands, the reference MD and training.

On a terminal :func:`progress` gives tqdm's bar.  Off a terminal a bar's carriage returns
make a log unreadable, so it prints a plain line instead, at most every
``PROGRESS_INTERVAL_S``::

    propagate: 120/400 segments (30%), 12 s elapsed, ~28 s left

and, when it has printed any, a last line when it is closed.  Runs shorter than the
interval print nothing.  Both kinds have ``update(n)``, ``close()`` and work as context
managers; ``set_postfix(**values)`` adds ``key=value`` pairs (tqdm's, or the end of the
plain line).  ``progress(..., enabled=False)`` gives a reporter that prints nothing.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

#: Shortest time between two plain progress lines, s.
PROGRESS_INTERVAL_S = 5.0
_MINUTE_S = 60.0
_HOUR_S = 3600.0

__all__ = ["PROGRESS_INTERVAL_S", "PlainProgress", "StageProgress", "progress"]


class PlainProgress:
    """Plain progress lines on ``stream``: ``DESC: DONE/TOTAL UNITs (P%), T elapsed, ~T left``.

    Args:
        total: number of items, or None when unknown (no percentage or estimate then).
        desc: what is running (``propagate``).
        unit: one item (``segment``).
        stream: where the lines go.
        clock: seconds, monotonic (``time.monotonic``; a fake one in tests).
        interval_s: shortest time between two lines, s.
    """

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO,
                 clock: Callable[[], float] = time.monotonic,
                 interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.clock, self.interval_s = clock, interval_s
        self.n, self.lines, self.postfix = 0, 0, ""
        self._start = self._last = clock()
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished items; print a line when the interval has passed."""
        self.n += n
        now = self.clock()
        if now - self._last >= self.interval_s:
            self._last = now
            self._print(now)

    def set_postfix(self, **values) -> None:
        """Values shown at the end of the next lines (``loss=0.012``)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Print the last line (only if a line was printed before); idempotent."""
        if not self._closed and self.lines:
            self._print(self.clock())
        self._closed = True

    def line(self, now: float) -> str:
        """The progress line at clock time ``now``, s."""
        elapsed = now - self._start
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        text = f"{self.desc}: {count} {_plural(self.unit)}"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {_duration(elapsed)} elapsed"
        if self.total and 0 < self.n < self.total:
            text += f", ~{_duration(elapsed * (self.total - self.n) / self.n)} left"
        return f"{text}, {self.postfix}" if self.postfix else text

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self.lines += 1

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "segment", *,
             stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
             interval_s: float = PROGRESS_INTERVAL_S, enabled: bool = True,
             leave: bool = True):
    """A progress reporter for ``total`` items: tqdm's bar when ``stream`` (default: the
    current stderr) is a terminal, else :class:`PlainProgress`; nothing when not
    ``enabled``.  ``leave``: whether tqdm's bar stays after closing."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return PlainProgress(total, desc, unit, stream, clock, math.inf)
    if _is_terminal(stream):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=leave)
    return PlainProgress(total, desc, unit, stream, clock, interval_s)


class StageProgress:
    """A ``progress(stage, total) -> update`` callback (what
    :func:`gicnet_runtime.analysis.report.run_evaluation` takes): each stage gets its own
    reporter from :func:`progress`, and starting a stage closes the one before; ``close()``
    (or leaving a ``with`` block) closes the last.  ``kwargs`` go to :func:`progress`."""

    def __init__(self, unit: str = "segment", **kwargs) -> None:
        self.unit, self.kwargs, self._current = unit, kwargs, None

    def __call__(self, stage: str, total: int | None) -> Callable[[int], None]:
        self.close()
        self._current = progress(total, stage, self.unit, **self.kwargs)
        return self._current.update

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _plural(unit: str) -> str:
    if unit.endswith("y") and unit[-2:-1] not in tuple("aeiou"):
        return unit[:-1] + "ies"
    return unit + "s"


def _duration(seconds: float) -> str:
    """``12 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    if seconds < _MINUTE_S:
        return f"{seconds:.0f} s"
    if seconds < _HOUR_S:
        minutes, rest = divmod(round(seconds), round(_MINUTE_S))
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds / _MINUTE_S), round(_HOUR_S / _MINUTE_S))
    return f"{hours} h {rest:02d} min"
