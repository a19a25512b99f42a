"""The time-reversal correction (gicnet_runtime.unroll.reversal) on a harmonic diatomic whose
exact motion is known, and on the shipped ensemble."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gicnet_runtime.core.contract import ENERGY_T, POSITIONS_T, VELOCITIES_T
from gicnet_runtime.core.model import load_model
from gicnet_runtime.unroll import reversal

MASSES = np.array([16.0, 1.0])                        # an O-H like diatomic, amu
MU = MASSES.prod() / MASSES.sum()                      # reduced mass
OMEGA = 2 * np.pi / 9.3                                # rad/fs: a 9.3 fs period (3600 cm-1)
R0 = 0.97                                              # Å
L = 10.0                                               # fs


def _state(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 2, 3) positions and velocities of diatomics along x with bond displacement x (B,)
    Å and stretch rate v (B,) Å/fs, centre of mass at rest at the origin."""
    share = MASSES[::-1] / MASSES.sum()                # each atom's share of the stretch
    pos = np.zeros((x.size, 2, 3))
    vel = np.zeros((x.size, 2, 3))
    pos[:, 0, 0], pos[:, 1, 0] = -share[0] * (R0 + x), share[1] * (R0 + x)
    vel[:, 0, 0], vel[:, 1, 0] = -share[0] * v, share[1] * v
    return pos, vel


def _stretch(pos: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return pos[..., 1, 0] - pos[..., 0, 0] - R0, vel[..., 1, 0] - vel[..., 0, 0]


def _energy(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    return 0.5 * MU * (v**2 + (OMEGA * x) ** 2)


def _network(gain: float = 1.0, omega: float = OMEGA):
    """A stand-in for Model.run: the exact harmonic motion at frequency ``omega`` whose
    displacement from R0 is scaled by 1 + (gain - 1) t / L (gain < 1: the damping a network
    trained on squared errors shows; t = 0 stays exact)."""
    def run(positions, velocities, times):
        x0, v0 = _stretch(positions, velocities)
        t = np.asarray(times, dtype=np.float64)
        scale = 1.0 + (gain - 1.0) * t / L
        x = scale * (x0[:, None] * np.cos(omega * t) + v0[:, None] / omega * np.sin(omega * t))
        v = scale * (-x0[:, None] * omega * np.sin(omega * t) + v0[:, None] * np.cos(omega * t)) \
            + (gain - 1.0) / L * (x / scale)
        pos, vel = _state(x.ravel(), v.ravel())
        shape = (1, *t.shape, 2, 3)
        return {POSITIONS_T: pos.reshape(shape).astype(np.float32),
                VELOCITIES_T: vel.reshape(shape).astype(np.float32),
                ENERGY_T: (0.5 * MU * (OMEGA * x) ** 2)[None].astype(np.float32)}
    return run


def _phases(n: int = 64, amplitude: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Starts of one amplitude at n phases evenly spread over a period."""
    phase = 2 * np.pi * np.arange(n) / n
    return _state(amplitude * np.cos(phase), -amplitude * OMEGA * np.sin(phase))


def test_exact_and_phase_shifted_motion_have_no_round_trip_defect():
    """Reversible motion comes back to its start: the exact one and one whose frequency is
    3 % off (an error in the phase, not a loss) give d = 0 to float32 precision."""
    pos, vel = _phases()
    for run in (_network(), _network(omega=1.03 * OMEGA)):
        d_pos, d_vel, potential = reversal.round_trip_defect(run, pos, vel, L)
        assert np.abs(d_pos).max() < 1e-6 and np.abs(d_vel).max() < 1e-6
        x0, _ = _stretch(pos, vel)
        np.testing.assert_allclose(potential[0], 0.5 * MU * (OMEGA * x0) ** 2, rtol=1e-5,
                                   atol=1e-12)


def test_the_defect_of_a_damped_network_is_both_legs_losses():
    """A network that keeps 98 % of the displacement over L loses 2 % on each leg: the
    round trip's defect is about 4 % of the start's displacement at every phase (within
    10 %: the part lost on the way out is carried back through the motion's phase)."""
    pos, vel = _phases()
    d_pos, _, _ = reversal.round_trip_defect(_network(gain=0.98), pos, vel, L)
    x0, _ = _stretch(pos, vel)
    dx = d_pos[:, 1, 0] - d_pos[:, 0, 0]
    big = np.abs(x0) > 0.005
    np.testing.assert_allclose(dx[big] / x0[big], 1 - 0.98**2, rtol=0.1)


def test_half_the_defect_turns_the_loss_into_a_bounded_fluctuation():
    """Without the correction a 2 % damping loses energy at every phase (about 4 % of it per
    segment).  Started from s + d / 2, the end state's energy error averages to zero over the
    phases to second order in the damping (below 5 % of the uncorrected loss)."""
    run = _network(gain=0.98)
    pos, vel = _phases()
    e0 = _energy(*_stretch(pos, vel))

    def end_energy(p, v):
        out = run(p, v, np.full((p.shape[0], 1), L))
        return _energy(*_stretch(out[POSITIONS_T][0, :, 0].astype(np.float64),
                                 out[VELOCITIES_T][0, :, 0].astype(np.float64)))

    plain = (end_energy(pos, vel) - e0) / e0
    start = reversal.corrected_start(run, pos, vel, MASSES, L, 0.5)
    assert start.applied.all()
    corrected = (end_energy(start.positions, start.velocities) - e0) / e0
    assert np.all(plain < -0.03) and plain.mean() < -0.035
    assert abs(corrected.mean()) < 0.05 * abs(plain.mean())
    # unrolled over 200 segments: what is left is the second-order loss, about 0.1 % per
    # segment, against 4 % without the correction
    kept = {}
    for share in (0.0, 0.5):
        p, v = pos[:8], vel[:8]
        for _ in range(200):
            start = reversal.corrected_start(run, p, v, MASSES, L, share)
            out = run(start.positions, start.velocities, np.full((8, 1), L))
            p = out[POSITIONS_T][0, :, 0].astype(np.float64)
            v = out[VELOCITIES_T][0, :, 0].astype(np.float64)
        kept[share] = _energy(*_stretch(p, v)) / e0[:8]
    assert np.all(kept[0.0] < 1e-3)
    assert np.all((kept[0.5] > 0.7) & (kept[0.5] < 1.0))


def test_a_correction_beyond_the_bounds_is_not_applied():
    """A start whose share of the defect would move an atom by more than MAX_SHIFT_A keeps
    its state; the others are corrected; the rigid-body part is never added."""
    pos, vel = _phases(n=4, amplitude=0.01)
    big = _state(np.array([0.6]), np.array([0.0]))
    pos, vel = np.concatenate([pos, big[0]]), np.concatenate([vel, big[1]])
    start = reversal.corrected_start(_network(gain=0.9), pos, vel, MASSES, L, 0.5)
    assert start.applied.tolist() == [True] * 4 + [False]
    np.testing.assert_array_equal(start.positions[4], pos[4])
    shift = start.positions - pos
    np.testing.assert_allclose(np.einsum("n,bnk->bk", MASSES, shift), 0.0, atol=1e-12)


def test_frames_at_local_time_zero_are_the_given_start():
    pos, vel = _phases(n=3)
    run = _network(gain=0.95)
    start = reversal.corrected_start(run, pos, vel, MASSES, L, 0.5)
    local = np.array([[0.0, 5.0, 10.0], [2.0, 5.0, 10.0], [0.0, 1.0, 10.0]])
    out = reversal.given_start_at_zero(run(start.positions, start.velocities, local), local, start)
    np.testing.assert_array_equal(out[POSITIONS_T][0, [0, 2], 0], pos[[0, 2]].astype(np.float32))
    np.testing.assert_array_equal(out[VELOCITIES_T][0, [0, 2], 0], vel[[0, 2]].astype(np.float32))
    np.testing.assert_array_equal(out[ENERGY_T][0, [0, 2], 0],
                                  start.potential0_eV[0, [0, 2]].astype(np.float32))
    assert not np.allclose(out[POSITIONS_T][0, 1, 0], run(pos, vel, local)[POSITIONS_T][0, 1, 0])


def _with_share(tmp_path, share):
    """The shipped ensemble file with ``gicnet.unroll_reversal_share`` = ``share``."""
    import onnx

    from gicnet_runtime.core import shipped_model
    from tests.onnx_fixtures import with_metadata

    source = shipped_model() / "ensemble.onnx"
    props = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
    path = with_metadata(source, tmp_path / f"share{share:g}.onnx",
                         {**props, "gicnet.unroll_reversal_share": json.dumps(share)})
    return load_model(path, device="cpu", threads=1)


def test_unrolling_with_the_correction_starts_from_the_given_state(tmp_path):
    """On the shipped ensemble: the share comes from the metadata and goes into each
    trajectory's info; frame 0 is the initial state; the frames differ from those without
    the correction; the momenta stay those of the start."""
    from gicnet_runtime.core import shipped_model
    from gicnet_runtime.core.mechanics import angular_momentum, linear_momentum
    from gicnet_runtime.io.initial import read_initial_conditions

    initial = read_initial_conditions(shipped_model() / "initial.extxyz")
    pos, vel = initial.positions[:2], initial.velocities[:2]
    corrected, plain = _with_share(tmp_path, 0.5), _with_share(tmp_path, 0.0)
    assert corrected.description.reversal_share == 0.5
    runs = corrected.propagate(pos, vel, duration_fs=100.0, dt_fs=1.0)
    others = plain.propagate(pos, vel, duration_fs=100.0, dt_fs=1.0)
    masses = np.asarray(corrected.description.masses_amu)
    for b, (run, other) in enumerate(zip(runs, others, strict=True)):
        assert run.info["reversal_share"] == 0.5 and other.info["reversal_share"] == 0.0
        np.testing.assert_array_equal(run.positions[0], pos[b].astype(np.float32))
        assert np.abs(run.positions[-1] - other.positions[-1]).max() > 1e-4
        p = run.positions.astype(np.float64)
        v = run.velocities.astype(np.float64)
        frames = (len(p), 3)
        np.testing.assert_allclose(linear_momentum(v, masses),
                                   np.broadcast_to(linear_momentum(vel[b], masses), frames),
                                   atol=1e-5)
        np.testing.assert_allclose(angular_momentum(p, v, masses),
                                   np.broadcast_to(angular_momentum(pos[b], vel[b], masses),
                                                   frames), atol=1e-4)


@pytest.mark.parametrize("share, message", [(-0.1, "must lie in [0, 1]"),
                                            (1.5, "must lie in [0, 1]"), (float("nan"), "")])
def test_a_share_outside_zero_to_one_is_refused(tmp_path, share, message):
    from gicnet_runtime.errors import ModelError

    with pytest.raises(ModelError, match=re.escape(f"unroll_reversal_share {message}".strip())):
        _with_share(tmp_path, share)


def test_a_trajectorys_frames_do_not_depend_on_the_others_in_its_batch():
    """Every graph call of a run of several trajectories is padded to a multiple of
    ROW_ALIGN rows: the shipped ensemble's first 3 starts unrolled alone (3 rows, padded to
    4) and among all 10 (padded to 12) give the same float32 frames.  Unpadded, a batch's
    last rows get slightly different numbers from onnxruntime's kernels (checked here on the
    bare graph), which backtracks would turn into different trajectories."""
    from gicnet_runtime.core import shipped_model
    from gicnet_runtime.io.initial import read_initial_conditions
    from gicnet_runtime.unroll.segment import ROW_ALIGN

    assert ROW_ALIGN == 4
    model = load_model(device="cpu", threads=1)
    initial = read_initial_conditions(shipped_model() / "initial.extxyz")
    pos, vel = initial.positions, initial.velocities
    times = np.tile(np.linspace(0.5, 10.0, 20), (10, 1))
    alone = model.run(pos[:3], vel[:3], times[:3])[POSITIONS_T]
    among = model.run(pos, vel, times)[POSITIONS_T]
    assert np.abs(alone - among[:, :3]).max() > 0       # the kernels' batch dependence
    few = model.propagate(pos[:3], vel[:3], duration_fs=60.0, dt_fs=1.0)
    many = model.propagate(pos, vel, duration_fs=60.0, dt_fs=1.0)
    for a, b in zip(few, many[:3]):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.velocities, b.velocities)


def test_a_start_hotter_than_its_reference_is_not_corrected():
    """The correction puts back what the network loses: a start whose total energy (members'
    mean potential energy plus kinetic) exceeds its reference by more than MAX_EXCESS_EV
    (1 kcal/mol) keeps its state; one below it, or without a reference, is corrected."""
    from gicnet_runtime.core.ensemble import reference_energy_eV

    pos, vel = _phases(n=3, amplitude=0.01)
    run = _network(gain=0.95)
    _, _, potential0 = reversal.round_trip_defect(run, pos, vel, L)
    total = reference_energy_eV(potential0, vel, MASSES)
    excess = np.array([0.0, 0.9, 1.1]) * reversal.MAX_EXCESS_EV
    start = reversal.corrected_start(run, pos, vel, MASSES, L, 0.5, total - excess)
    assert start.applied.tolist() == [True, True, False]
    np.testing.assert_array_equal(start.positions[2], pos[2])
    assert reversal.corrected_start(run, pos, vel, MASSES, L, 0.5).applied.all()
    assert reversal.MAX_EXCESS_EV == pytest.approx(1.0 / 23.0605, rel=1e-4)
