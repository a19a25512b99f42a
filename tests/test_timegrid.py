"""Time specifications, output frames and their segments."""

import numpy as np
import pytest

from gicnet_runtime.core.timegrid import frame_times_fs, parse_times, segment_of
from gicnet_runtime.errors import InputError


def test_parse_range_includes_stop():
    times = parse_times("0:10:0.1")
    assert times.size == 101 and times[-1] == pytest.approx(10.0)


def test_parse_list():
    np.testing.assert_array_equal(parse_times("3, 1.5,0"), [3.0, 1.5, 0.0])


@pytest.mark.parametrize("spec", ["", "a:b:c", "0:10:0", "5:1:1", "1,,x"])
def test_bad_specs(spec):
    with pytest.raises(InputError):
        parse_times(spec)


def test_frames_and_segments():
    frames = frame_times_fs(25.0, 2.5)
    assert frames.size == 11
    # Segments of 10 fs: (0, 10] is 0, (10, 20] is 1, (20, 30] is 2; t = 0 is the start.
    np.testing.assert_array_equal(segment_of(frames, 10.0),
                                  [-1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2])


def test_rounding_does_not_add_a_segment():
    frames = frame_times_fs(30.0, 0.1)
    assert frames.size == 301 and segment_of(frames, 10.0)[-1] == 2
