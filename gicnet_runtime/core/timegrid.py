"""Time grids: parsing time specifications, output frames and their segments (fs).

A trajectory is unrolled in segments of length L (at most the model's tc): segment s
covers (s·L, (s+1)·L].
Output frames are at k·dt, k = 0, 1, ... up to the duration; frame 0 is the initial
condition and every later frame belongs to the segment whose interval holds it (a
frame exactly on a boundary is the end of the earlier segment).
"""

from __future__ import annotations

import math

import numpy as np

from gicnet_runtime.errors import InputError

#: Relative slack for rounding in time arithmetic (10 fs · 1e-9 = 1e-8 fs).
TIME_RTOL = 1e-9
#: Most times a time specification may give (a 10 fs segment every 1e-5 fs); more is no
#: request for one segment but a typo, and would allocate gigabytes.
MAX_TIMES = 10 ** 6


def parse_times(spec: str) -> np.ndarray:
    """Times from ``"start:stop:step"`` (stop included) or ``"t1,t2,..."``, fs -> (K,) float.

    InputError for a malformed, non-finite or empty specification and for more than
    :data:`MAX_TIMES` times (counted before any is made)."""
    text = spec.strip()
    try:
        values = [float(x) for x in text.split(":" if ":" in text else ",") if x.strip()]
        if ":" in text:
            start, stop, step = values
    except ValueError:
        raise InputError(f"cannot read times {spec!r}: give start:stop:step or t1,t2,...") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"times_fs contain NaN or inf: {spec!r}")
    if ":" in text:
        return _inclusive_range(start, stop, step)
    if not values:
        raise InputError("no times given")
    _check_count(len(values), spec)
    return np.array(values, dtype=np.float64)


def _inclusive_range(start: float, stop: float, step: float) -> np.ndarray:
    if not step > 0:
        raise InputError(f"time step must be positive, got {step}")
    if not stop >= start:
        raise InputError(f"time range {start}:{stop} is empty")
    count = _steps(stop - start, step) + 1
    _check_count(count, f"{start:g}:{stop:g}:{step:g}")
    return start + step * np.arange(count, dtype=np.float64)


def _check_count(count: float, spec: str) -> None:
    if count > MAX_TIMES:
        raise InputError(f"times {spec} give {count:,.0f} times, more than the "
                         f"{MAX_TIMES:,} one prediction takes")


def _steps(length: float, step: float) -> int:
    """Whole steps of ``step`` in ``length`` (rounding slack included); a float beyond
    2^53 when the count is absurd, so callers compare it before making an array."""
    steps = length / step * (1 + TIME_RTOL)
    return math.floor(steps) if steps < 2.0 ** 53 else steps


def frame_count(duration_fs: float, dt_fs: float) -> int:
    """Output frames 0, dt, 2·dt, ... <= duration, counted without making them (InputError
    for a duration or dt that is not a positive number); a float when absurdly many."""
    for name, value in (("duration_fs", duration_fs), ("dt_fs", dt_fs)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value}")
    return _steps(duration_fs, dt_fs) + 1


def frame_times_fs(duration_fs: float, dt_fs: float) -> np.ndarray:
    """Output frame times 0, dt, 2·dt, ... <= duration, fs -> (F,) float."""
    return dt_fs * np.arange(frame_count(duration_fs, dt_fs), dtype=np.float64)


def segment_count(duration_fs: float, dt_fs: float, segment_fs: float) -> float:
    """Segments of ``segment_fs`` that hold the output frames up to ``duration_fs``, counted
    without making the frames (as :func:`segment_of` of the last frame, plus one)."""
    last_fs = (frame_count(duration_fs, dt_fs) - 1) * dt_fs
    scaled = last_fs / segment_fs
    if scaled <= TIME_RTOL:
        return 0
    return math.ceil(scaled * (1 - TIME_RTOL) - TIME_RTOL) if scaled < 2.0 ** 53 else scaled


def unroll_segment_fs(tc_fs: float, segment_fs: float) -> float:
    """``segment_fs``, the length of the segments a trajectory is unrolled in, checked to
    be positive and at most the model's tc (whose predictions it uses), fs."""
    if not (math.isfinite(segment_fs) and 0 < segment_fs <= tc_fs * (1 + TIME_RTOL)):
        raise InputError(f"segment length must lie in (0, {tc_fs:g}] fs (the model's tc), "
                         f"got {segment_fs:g} fs")
    return min(float(segment_fs), float(tc_fs))


def segment_of(times_fs: np.ndarray, segment_fs: float) -> np.ndarray:
    """Segment index of each time: (F,) fs -> (F,) int; -1 for t = 0 (the initial frame)."""
    scaled = np.asarray(times_fs, dtype=np.float64) / segment_fs
    index = np.ceil(scaled * (1 - TIME_RTOL) - TIME_RTOL).astype(np.int64) - 1
    return np.where(scaled <= TIME_RTOL, -1, index)
