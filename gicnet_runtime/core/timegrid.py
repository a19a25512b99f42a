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


def parse_times(spec: str) -> np.ndarray:
    """Times from ``"start:stop:step"`` (stop included) or ``"t1,t2,..."``, fs -> (K,) float."""
    text = spec.strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
        else:
            times = np.array([float(x) for x in text.split(",") if x.strip()], dtype=np.float64)
    except ValueError:
        raise InputError(f"cannot read times {spec!r}: give start:stop:step or t1,t2,...") from None
    if ":" in text:
        return _inclusive_range(start, stop, step)
    if times.size == 0:
        raise InputError("no times given")
    return times


def _inclusive_range(start: float, stop: float, step: float) -> np.ndarray:
    if not step > 0 or not math.isfinite(step):
        raise InputError(f"time step must be positive, got {step}")
    if not stop >= start:
        raise InputError(f"time range {start}:{stop} is empty")
    count = math.floor((stop - start) / step * (1 + TIME_RTOL)) + 1
    return start + step * np.arange(count, dtype=np.float64)


def frame_times_fs(duration_fs: float, dt_fs: float) -> np.ndarray:
    """Output frame times 0, dt, 2·dt, ... <= duration, fs -> (F,) float."""
    for name, value in (("duration_fs", duration_fs), ("dt_fs", dt_fs)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value}")
    count = math.floor(duration_fs / dt_fs * (1 + TIME_RTOL)) + 1
    return dt_fs * np.arange(count, dtype=np.float64)


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
