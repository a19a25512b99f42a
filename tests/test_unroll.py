"""The accept / step-back / stop decisions of unrolled trajectories (pure logic)."""

import numpy as np

from gicnet_runtime.unroll.state import SegmentPrediction, UnrollState

THRESHOLD_EV = 0.04


def _prediction(errors, tag=0.0, failure=None, rows=(0,)):
    """Every member's prediction of one frame per trajectory in ``rows``; member m of
    trajectory row r ends at positions filled with tag + m + 100 r.  ``errors``: (M,)
    for every row alike, or (M, A)."""
    errors = np.asarray(errors, dtype=float)
    errors = np.repeat(errors[:, None], len(rows), axis=1) if errors.ndim == 1 else errors
    m, a = errors.shape
    ends = np.stack([[np.full((2, 3), tag + k + 100.0 * r) for r in range(a)]
                     for k in range(m)])                                  # (M, A, N, 3)
    return SegmentPrediction(rows=np.asarray(rows), positions=ends[:, :, None],
                             velocities=ends[:, :, None], potential_eV=None,
                             end_positions=ends, end_velocities=ends, errors_eV=errors,
                             failures=[failure] * a)


class _Output:
    """Collects what the state emits: frames at their place in the output (frame 0 is the
    initial state, never emitted by the state itself) and the order of the calls."""

    def __init__(self, n_batch, n_frames):
        self.positions = np.full((n_batch, n_frames, 2, 3), np.nan)
        self.calls = []

    def __call__(self, rows, segment, positions, velocities, potential):
        self.calls.append((rows.tolist(), segment))
        self.positions[rows, 1 + segment:1 + segment + positions.shape[1]] = positions


def _state(n_batch=1, n_segments=4, n_members=3):
    zero = np.zeros((n_batch, 2, 3))
    u = UnrollState(zero, zero, np.zeros((n_batch, 3)), np.zeros((n_batch, 3)),
                    np.zeros((n_batch, 3)), np.ones(n_segments, dtype=int), n_members,
                    has_energy=False)
    u.emit = _Output(n_batch, 1 + n_segments)
    return u


def test_accepts_the_best_member_within_the_threshold():
    u = _state()
    assert u.offer(_prediction([0.03, 0.01, 0.02]), THRESHOLD_EV) == 1
    assert u.segment[0] == 1 and u.member[0, 0] == 1
    np.testing.assert_array_equal(u.starts(np.array([0]))[0], 1.0)
    assert u.emit.calls == []  # segment 0 may still change: not final yet
    u.offer(_prediction([0.01, 0.02, 0.03], tag=10.0), THRESHOLD_EV)
    assert u.emit.calls == [([0], 0)]
    np.testing.assert_array_equal(u.emit.positions[0, 1], 1.0)  # member 1's frame is the output
    assert u.emitted_frames().tolist() == [2]


def test_every_segment_is_emitted_once_in_order_and_the_last_at_the_end():
    u = _state(n_segments=3, n_members=2)
    for k in range(3):
        u.offer(_prediction([0.02, 0.01], tag=10.0 * k), THRESHOLD_EV)
    assert u.emit.calls == [([0], 0), ([0], 1), ([0], 2)]
    np.testing.assert_array_equal(u.emit.positions[0, 1:, 0, 0], [1.0, 11.0, 21.0])
    assert u.emitted_frames().tolist() == [4] and u.active().size == 0


def test_steps_back_through_the_previous_ranking_then_keeps_the_best_attempt():
    u = _state(n_members=4)
    u.offer(_prediction([0.01, 0.02, 0.03, 0.5], tag=10.0), THRESHOLD_EV)
    # Three attempts at segment 1 from the previous segment's members 0, 1, 2; member 3
    # (0.5 eV) is never tried.  The middle attempt is the best.
    assert u.offer(_prediction([0.5, 0.6, 0.7, 0.8]), THRESHOLD_EV) == 0
    np.testing.assert_array_equal(u.starts(np.array([0]))[0], 11.0)
    assert u.emit.calls == []  # the switched segment is still open
    assert u.offer(_prediction([0.3, 0.2, 0.7, 0.8]), THRESHOLD_EV) == 0
    np.testing.assert_array_equal(u.starts(np.array([0]))[0], 12.0)
    assert u.offer(_prediction([0.4, 0.45, 0.7, 0.8]), THRESHOLD_EV) == 1
    assert u.member[0, :2].tolist() == [1, 1]
    assert u.error_eV[0, :2].tolist() == [0.02, 0.2]
    assert u.emit.calls == [([0], 0)]  # final once segment 1 was accepted
    np.testing.assert_array_equal(u.emit.positions[0, 1], 11.0)  # the best attempt's start
    assert np.isnan(u.emit.positions[0, 2]).all()  # segment 1 itself is still open
    assert u.backtracks[0] == 2 and np.flatnonzero(u.over_threshold[0]).tolist() == [1]
    assert u.segment[0] == 2 and not u.attempts


def test_a_good_retry_is_accepted_at_once():
    u = _state(n_members=2)
    u.offer(_prediction([0.01, 0.02]), THRESHOLD_EV)
    u.offer(_prediction([0.5, 0.6]), THRESHOLD_EV)
    assert u.offer(_prediction([0.03, 0.01]), THRESHOLD_EV) == 1
    assert u.member[0, :2].tolist() == [1, 1] and not u.over_threshold.any()


def test_first_segment_has_nothing_to_step_back_to():
    u = _state(n_members=2)
    assert u.offer(_prediction([0.2, 0.1]), THRESHOLD_EV) == 1
    assert u.member[0, 0] == 1 and u.over_threshold[0].tolist() == [True, False, False, False]
    assert u.backtracks[0] == 0


def test_every_member_failing_stops_the_trajectory():
    u = _state(n_members=1)
    u.offer(_prediction([0.01]), THRESHOLD_EV)
    assert u.offer(_prediction([np.inf], failure="non-finite prediction"), THRESHOLD_EV) == 0
    assert u.failure == ["non-finite prediction"] and u.segment[0] == 1
    assert u.active().size == 0 and u.n_frames(0) == 2
    assert u.emit.calls == [([0], 0)] and u.emitted_frames().tolist() == [2]


def test_failing_in_the_first_segment_keeps_the_initial_state_alone():
    u = _state(n_members=1)
    assert u.offer(_prediction([np.inf], failure="exploding geometry"), THRESHOLD_EV) == 0
    assert u.emit.calls == [] and u.emitted_frames().tolist() == [1]


def test_a_batch_is_decided_per_trajectory():
    """Rows within the threshold are accepted together; the row over it steps back alone."""
    u = _state(n_batch=3, n_members=2)
    u.offer(_prediction([0.01, 0.02], rows=(0, 1, 2)), THRESHOLD_EV)
    errors = np.array([[0.01, 0.5, 0.03], [0.02, 0.6, 0.01]])
    assert u.offer(_prediction(errors, tag=20.0, rows=(0, 1, 2)), THRESHOLD_EV) == 2
    assert u.segment.tolist() == [2, 1, 2] and u.backtracks.tolist() == [0, 1, 0]
    assert u.member[:, 1].tolist() == [0, -1, 1]
    assert u.emit.calls == [([0, 2], 0)]  # row 1's first segment is open to a switch
    np.testing.assert_array_equal(u.emit.positions[[0, 2], 1], [[[0.0] * 3] * 2, [[200.0] * 3] * 2])
    np.testing.assert_array_equal(u.starts(np.array([1]))[0], 1.0 + 100.0)
    assert u.active().tolist() == [0, 1, 2]
