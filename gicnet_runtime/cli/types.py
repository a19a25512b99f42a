"""Click parameter types for gicnet's numeric options: finite, in range, one-line errors.

Every number a command takes is parsed by one of these (or by ``click.IntRange``), so
NaN, inf, a negative length or a thread count of a billion is refused as a usage error
that names the option (``Invalid value for '--dt-fs': must be a finite number, got
'inf'``, exit 2) before any file is read or any model is loaded.  Limits that depend on
the model or the files (a segment at most tc, a frame within the file) and on the work a
run would do (:mod:`gicnet_runtime.cli.estimate`) are checked once those are known.
"""

from __future__ import annotations

import math

import click

#: Smallest time step or frame spacing, fs: far below any MD time step (0.01 fs and up),
#: and far above the denormal floats whose reciprocals overflow.
MIN_STEP_FS = 1e-6
#: Longest time any option takes, fs (one second): far beyond any MD run, and it keeps
#: every count of steps (duration / step <= 1e21) a finite float.
MAX_DURATION_FS = 1e15
#: Most threads or worker processes: more than any machine gicnet runs on has cores
#: (a billion would make onnxruntime, torch or the process pool try to start them all).
MAX_THREADS = 1024
#: Most integration points of `gicnet explain`: the midpoint rule's error falls as
#: 1/steps^2, so beyond 1000 (1e-6 of the attribution) more points add only time.
MAX_EXPLAIN_STEPS = 1000


class FiniteFloat(click.ParamType):
    """A finite float (no NaN or inf) within [min, max]; ``min_open`` / ``max_open``
    exclude the ends.  ``None`` for a bound means unbounded on that side."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False) -> None:
        self.min, self.max = min, max
        self.min_open, self.max_open = min_open, max_open

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number", param, ctx)
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"must be a finite number, got {value!r}", param, ctx)
        if not self.contains(number):
            self.fail(f"must be {self.describe()}, got {_show(number)}", param, ctx)
        return number

    def contains(self, number: float) -> bool:
        """Whether the finite ``number`` lies within the bounds."""
        if self.min is not None and (number <= self.min if self.min_open
                                     else number < self.min):
            return False
        return self.max is None or (number < self.max if self.max_open
                                    else number <= self.max)

    def describe(self) -> str:
        """The allowed range in words: "a positive number", "a number in [0, 10]"."""
        low, high = self.min, self.max
        if low == 0 and self.min_open:
            return "a positive number" + ("" if high is None else
                                          f" {'<' if self.max_open else '<='} {_show(high)}")
        if high is None:
            return ("a finite number" if low is None else
                    f"a number {'>' if self.min_open else '>='} {_show(low)}")
        if low is None:
            return f"a number {'<' if self.max_open else '<='} {_show(high)}"
        return (f"a number in {'(' if self.min_open else '['}{_show(low)}, "
                f"{_show(high)}{')' if self.max_open else ']'}")

    def __repr__(self) -> str:
        return f"FiniteFloat({self.describe()})"


def _show(number: float) -> str:
    """A number for messages: 0.5, 1e-6, 1e15."""
    text = f"{number:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


#: A positive number (an energy, a temperature, a friction, a wavenumber).
POSITIVE = FiniteFloat(min=0, min_open=True)
#: A number >= 0 (seconds between checkpoints).
NON_NEGATIVE = FiniteFloat(min=0)
#: Any finite number (a segment length, fs, checked against the model's tc once it is
#: loaded, in a message that names tc).
FINITE = FiniteFloat()
#: A positive length of time (durations, lags), fs.
DURATION_FS = FiniteFloat(min=0, max=MAX_DURATION_FS, min_open=True)
#: A time or length of time >= 0 (a time within a segment, an equilibration), fs.
TIME_FS = FiniteFloat(min=0, max=MAX_DURATION_FS)
#: A time step or frame spacing, fs.
STEP_FS = FiniteFloat(min=MIN_STEP_FS, max=MAX_DURATION_FS)
#: Threads of onnxruntime or torch, worker processes.
THREADS = click.IntRange(1, MAX_THREADS)
#: A count of one or more (starts, steps, trajectories).
COUNT = click.IntRange(min=1)
#: A 0-based index (a frame, a member) or a seed.
INDEX = click.IntRange(min=0)
