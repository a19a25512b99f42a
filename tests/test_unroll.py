"""The accept / step-back / stop decisions of one unrolled trajectory (pure logic)."""

import numpy as np

from gicnet_runtime.ensemble import Ranking
from gicnet_runtime.unroll import Candidate, Unroll

THRESHOLD_EV = 0.04


def _candidate(errors, tag=0.0, failure=None):
    """A candidate whose member m ends at positions filled with tag + m."""
    errors = np.asarray(errors, dtype=float)
    m = errors.size
    ends = np.stack([np.full((2, 3), tag + k) for k in range(m)])
    return Candidate(times_fs=np.array([1.0]), positions=ends[:, None], velocities=ends[:, None],
                     potential_eV=None, end_positions=ends, end_velocities=ends,
                     ranking=Ranking(errors), members=np.arange(m), failure=failure)


def _unroll():
    zero = np.zeros((2, 3))
    return Unroll(zero, zero, np.zeros(3), np.zeros(3), np.zeros(3))


def test_accepts_the_best_member_within_the_threshold():
    u = _unroll()
    assert u.offer(_candidate([0.03, 0.01, 0.02]), THRESHOLD_EV)
    assert u.segment == 1 and u.accepted[0].member == 1
    np.testing.assert_array_equal(u.start()[0], 1.0)


def test_steps_back_through_the_previous_ranking_then_keeps_the_best_attempt():
    u = _unroll()
    u.offer(_candidate([0.01, 0.02, 0.03, 0.5], tag=10.0), THRESHOLD_EV)
    # Three attempts at segment 1 from the previous segment's members 0, 1, 2; member 3
    # (0.5 eV) is never tried.  The middle attempt is the best.
    assert not u.offer(_candidate([0.5, 0.6]), THRESHOLD_EV)
    np.testing.assert_array_equal(u.start()[0], 11.0)
    assert not u.offer(_candidate([0.3, 0.2]), THRESHOLD_EV)
    np.testing.assert_array_equal(u.start()[0], 12.0)
    assert u.offer(_candidate([0.4, 0.45]), THRESHOLD_EV)
    assert [c.member for c in u.accepted] == [1, 1]
    assert [c.error_eV for c in u.accepted] == [0.02, 0.2]
    assert u.backtracks == 2 and u.over_threshold == [1] and u.segment == 2


def test_a_good_retry_is_accepted_at_once():
    u = _unroll()
    u.offer(_candidate([0.01, 0.02]), THRESHOLD_EV)
    u.offer(_candidate([0.5, 0.6]), THRESHOLD_EV)
    assert u.offer(_candidate([0.03, 0.01]), THRESHOLD_EV)
    assert [c.member for c in u.accepted] == [1, 1] and u.over_threshold == []


def test_first_segment_has_nothing_to_step_back_to():
    u = _unroll()
    assert u.offer(_candidate([0.2, 0.1]), THRESHOLD_EV)
    assert u.accepted[0].member == 1 and u.over_threshold == [0] and u.backtracks == 0


def test_every_member_failing_stops_the_trajectory():
    u = _unroll()
    u.offer(_candidate([0.01]), THRESHOLD_EV)
    assert not u.offer(_candidate([np.inf, np.inf], failure="non-finite prediction"),
                       THRESHOLD_EV)
    assert u.failure == "non-finite prediction" and u.segment == 1


def test_older_segments_keep_only_the_member_in_use():
    u = _unroll()
    u.offer(_candidate([0.02, 0.01, 0.03]), THRESHOLD_EV)
    u.offer(_candidate([0.01, 0.02, 0.03]), THRESHOLD_EV)
    first = u.accepted[0]
    assert first.positions.shape[0] == 1 and first.member == 1 and first.error_eV == 0.01
