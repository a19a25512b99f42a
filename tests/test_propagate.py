"""Unrolling long trajectories: frames, momenta, ensemble choice, backtracking, failures."""

import json

import numpy as np
import pytest

from gicnet_runtime import load_model
from gicnet_runtime.errors import InputError
from gicnet_runtime.unroll import momentum as mom
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    TOTAL_ENERGY_EV,
    thermal_velocities,
    write_model,
)

MASSES = np.array(ETHANOL_MASSES_AMU)
#: Pure translation: keeps the fixture's hidden marker (a z distance) unchanged by free flight.
TRANSLATION_A_PER_FS = np.tile([0.01, 0.002, 0.0], (9, 1))
#: Free flight from thermal velocities breaks bonds after ~20-40 fs, which the unrolling's
#: physical-sanity checks stop (tests/test_sanity.py); tests of the unrolling's mechanics
#: that fly longer take those checks as warnings.
MECHANICS = {"unphysical": "warn"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("propagate")
    specs = {
        "free": {},
        "defective": {"accel_A_per_fs2": (2e-4, -1e-4, 0.0), "spin_per_fs": (0.0, 1e-3, 3e-3)},
        "err30": {"energy_error_eV": 0.03},
        "err10": {"energy_error_eV": 0.01},
        "err_neg20": {"energy_error_eV": -0.02},
        "err100": {"energy_error_eV": 0.1},
        "cheap_damaging": {"energy_error_eV": 0.01, "damage": 1.0},
        "costly_clean": {"energy_error_eV": 0.03, "damage": 0.0},
        "nan": {"nan_after_fs": 5.0, "spare_load_check": True},
        "explode": {"growth": 1.0},
        "grow": {"growth": 0.01},
        "no_energy_a": {"has_energy": False},
        "no_energy_b": {"has_energy": False, "energy_error_eV": 1.0},
    }
    return {name: write_model(folder / f"{name}.onnx", **kw) for name, kw in specs.items()}


def _model(models, *names):
    return load_model([models[n] for n in names], device="cpu")


def test_free_flight_frames_at_any_spacing(models):
    vel = thermal_velocities(0)
    traj = _model(models, "free").propagate(ETHANOL_POSITIONS_A, vel, 31.5, 0.7)[0]
    np.testing.assert_allclose(traj.time_fs, 0.7 * np.arange(46), atol=1e-12)
    expected = ETHANOL_POSITIONS_A + vel * traj.time_fs[:, None, None]
    np.testing.assert_allclose(traj.positions, expected, atol=2e-6)
    np.testing.assert_allclose(traj.velocities, np.broadcast_to(vel, expected.shape), atol=1e-8)
    np.testing.assert_allclose(traj.kinetic_energy, mom.kinetic_energy_eV(vel, MASSES), rtol=1e-6)
    np.testing.assert_allclose(traj.total_energy(), TOTAL_ENERGY_EV, atol=1e-5)
    assert traj.info["segment_members"] == [0, 0, 0, 0]


@pytest.mark.parametrize("dt_fs", [12.0, 25.0])
def test_frames_further_apart_than_a_segment_leave_segments_without_frames(models, dt_fs):
    """Frames 12 or 25 fs apart with 10 fs segments: segment 0 (and 1) hold no frame and
    are still unrolled; the frames are the free flight's (exact; 30 fs, before the flight
    stretches a bond beyond the sanity bound)."""
    vel = thermal_velocities(0)
    traj = _model(models, "free").propagate(ETHANOL_POSITIONS_A, vel, 30.0, dt_fs)[0]
    np.testing.assert_allclose(traj.time_fs, dt_fs * np.arange(int(30.0 // dt_fs) + 1),
                               atol=1e-12)
    expected = ETHANOL_POSITIONS_A + vel * traj.time_fs[:, None, None]
    np.testing.assert_allclose(traj.positions, expected, atol=2e-6)
    assert len(traj.info["segment_members"]) == 3
    assert "failure" not in traj.info


#: Relative rounding of float32 frames (eps 1.2e-7, summed over atoms).
FLOAT32_RTOL = 1e-6


def test_momenta_are_restored_to_their_initial_values(models):
    vel = thermal_velocities(3)
    model = _model(models, "defective")
    p0 = mom.linear_momentum(vel, MASSES)
    l0 = mom.angular_momentum(ETHANOL_POSITIONS_A, vel, MASSES)
    raw = model.predict(ETHANOL_POSITIONS_A, vel, [10.0])
    assert np.abs(mom.linear_momentum(raw.velocities, MASSES) - p0).max() > 1e-2  # it drifts
    assert np.abs(mom.angular_momentum(raw.positions, raw.velocities, MASSES) - l0).max() > 1e-2
    traj = model.propagate(ETHANOL_POSITIONS_A, vel, 60.0, 0.5, **MECHANICS)[0]
    # Frames are stored in float32 (the network's precision): the momenta hold to its
    # rounding, ~1e-7 of their size; the drift they had was 1e-2.
    assert traj.positions.dtype == traj.velocities.dtype == np.float32
    np.testing.assert_allclose(mom.linear_momentum(traj.velocities, MASSES),
                               np.broadcast_to(p0, (traj.n_frames, 3)),
                               atol=FLOAT32_RTOL * np.abs(p0).max())
    np.testing.assert_allclose(mom.angular_momentum(traj.positions, traj.velocities, MASSES),
                               np.broadcast_to(l0, (traj.n_frames, 3)),
                               atol=FLOAT32_RTOL * np.abs(l0).max())
    com0 = mom.centre_of_mass(ETHANOL_POSITIONS_A, MASSES)
    line = com0 + p0 / MASSES.sum() * traj.time_fs[:, None]
    np.testing.assert_allclose(mom.centre_of_mass(traj.positions, MASSES), line, atol=1e-6)


def test_batch_equals_single_runs(models):
    vel = thermal_velocities(7, count=3)
    pos = ETHANOL_POSITIONS_A + np.random.default_rng(7).normal(0, 0.02, vel.shape)
    model = _model(models, "defective", "err10")
    batch = model.propagate(pos, vel, 25.0, 1.5)
    for b in range(3):
        single = model.propagate(pos[b], vel[b], 25.0, 1.5)[0]
        np.testing.assert_allclose(single.positions, batch[b].positions, rtol=0, atol=1e-9)
        np.testing.assert_allclose(single.velocities, batch[b].velocities, rtol=0, atol=1e-9)
        assert single.info == batch[b].info


def test_ensemble_uses_the_member_with_the_smallest_energy_error(models):
    model = _model(models, "err30", "err10", "err_neg20")
    traj = model.propagate(ETHANOL_POSITIONS_A, thermal_velocities(1), 40.0, 1.0,
                           **MECHANICS)[0]
    assert traj.info["segment_members"] == [1, 1, 1, 1]
    np.testing.assert_allclose(traj.info["segment_energy_error_eV"], 0.01, atol=1e-5)
    assert traj.info["backtracks"] == 0 and traj.info["segments_over_threshold"] == []
    # err10's total energy drifts linearly within each segment: 0.01 eV * t / tc.
    local = traj.time_fs - 10.0 * np.maximum(np.ceil(traj.time_fs / 10.0) - 1, 0)
    np.testing.assert_allclose(traj.total_energy(), TOTAL_ENERGY_EV + 0.01 * local / 10.0,
                               atol=2e-5)


def test_backtracking_steps_back_to_the_member_that_does_no_damage(models):
    # cheap_damaging wins every segment on its own error (0.01 vs 0.03 eV) but leaves a
    # state that costs the next segment 1 eV; stepping back to costly_clean avoids that.
    model = _model(models, "cheap_damaging", "costly_clean")
    traj = model.propagate(ETHANOL_POSITIONS_A, TRANSLATION_A_PER_FS, 50.0, 1.0,
                           energy_threshold_eV=0.5)[0]
    assert traj.info["segment_members"] == [1, 1, 1, 1, 0]
    assert traj.info["backtracks"] == 4
    np.testing.assert_allclose(traj.info["segment_energy_error_eV"],
                               [0.03, 0.03, 0.03, 0.03, 0.01], atol=1e-5)
    assert traj.info["segments_over_threshold"] == []


def test_segments_over_the_threshold_are_recorded(models):
    traj = _model(models, "err100").propagate(ETHANOL_POSITIONS_A, thermal_velocities(1),
                                              30.0, 1.0)[0]
    assert traj.info["segments_over_threshold"] == [0, 1, 2]
    assert traj.n_frames == 31 and "failure" not in traj.info


def test_non_finite_member_is_skipped(models):
    traj = _model(models, "nan", "free").propagate(ETHANOL_POSITIONS_A, thermal_velocities(1),
                                                   20.0, 1.0)[0]
    assert traj.info["segment_members"] == [1, 1] and "failure" not in traj.info


def test_non_finite_prediction_stops_the_trajectory(models):
    vel = thermal_velocities(1, count=2)
    trajs = _model(models, "nan").propagate(np.stack([ETHANOL_POSITIONS_A] * 2), vel, 20.0, 1.0)
    for b, traj in enumerate(trajs):
        assert traj.n_frames == 1 and np.all(np.isfinite(traj.positions))
        assert traj.info["failure"] == (f"trajectory {b}: non-finite prediction between "
                                        "t = 0 and 10 fs")


def test_exploding_geometry_stops_the_trajectory_at_its_last_good_segment(models):
    # growth 1: the molecule doubles in size each segment; ethanol's extent (~2.2 Å) passes
    # 2.2 + 10 Å in the third segment (2.2 * 8 > 12.2 > 2.2 * 4).
    traj = _model(models, "explode").propagate(ETHANOL_POSITIONS_A, thermal_velocities(1),
                                               100.0, 1.0, **MECHANICS)[0]
    assert traj.time_fs[-1] == pytest.approx(20.0)
    assert traj.info["failure"] == "trajectory 0: exploding geometry between t = 20 and 30 fs"


def test_models_without_energy_use_the_first_working_member(models):
    traj = _model(models, "no_energy_b", "no_energy_a").propagate(
        ETHANOL_POSITIONS_A, thermal_velocities(1), 20.0, 2.0)[0]
    assert traj.potential_energy is None and traj.kinetic_energy is not None
    assert traj.info["segment_members"] == [0, 0]
    assert "segment_energy_error_eV" not in traj.info


def test_progress_counts_every_segment(models):
    counts = []
    model = _model(models, "free")
    model.propagate(np.stack([ETHANOL_POSITIONS_A] * 2), thermal_velocities(1, count=2), 35.0,
                    1.0, progress=counts.append, **MECHANICS)
    assert sum(counts) == 2 * model.segment_count(35.0, 1.0) == 8


@pytest.mark.parametrize("duration_fs, dt_fs, message", [
    (0.0, 1.0, "duration_fs must be a positive"),
    (10.0, -1.0, "dt_fs must be a positive"),
    (10.0, np.nan, "dt_fs must be a positive"),
    (1.0, 2.0, "no frames"),
])
def test_bad_durations(models, duration_fs, dt_fs, message):
    with pytest.raises(InputError, match=message):
        _model(models, "free").propagate(ETHANOL_POSITIONS_A, thermal_velocities(1),
                                         duration_fs, dt_fs)


@pytest.mark.parametrize("restore", [True, False])
def test_energy_restoration_starts_every_segment_with_the_initial_total_energy(models, restore):
    # Free flight whose total energy rises by 0.01 eV over each segment (E_pot includes the
    # error): restoring starts segment k with kinetic energy KE0 - k * 0.01 eV, and free
    # flight keeps each segment's velocities, so every frame of segment k shows it.
    vel = thermal_velocities(4)
    traj = _model(models, "err10").propagate(ETHANOL_POSITIONS_A, vel, 40.0, 2.5,
                                             restore_energy=restore, **MECHANICS)[0]
    k = np.maximum(np.ceil(traj.time_fs / 10.0 - 1e-9) - 1, 0)
    ke0 = mom.kinetic_energy_eV(vel, MASSES)
    expected = ke0 - 0.01 * k if restore else np.full(k.shape, ke0)
    np.testing.assert_allclose(traj.kinetic_energy, expected, atol=1e-6)
    assert traj.info["restore_energy"] is restore
    np.testing.assert_allclose(mom.linear_momentum(traj.velocities[-1], MASSES),
                               mom.linear_momentum(vel, MASSES), atol=1e-6)
    last = mom.angular_momentum(traj.positions[-1], traj.velocities[-1], MASSES)
    np.testing.assert_allclose(last, mom.angular_momentum(ETHANOL_POSITIONS_A, vel, MASSES),
                               atol=1e-6)


@pytest.mark.parametrize("fraction, deficit, segment_fs, per_segment", [
    (None, None, 10.0, 1.0), (0.3, None, 10.0, 0.3), (None, "mean", 10.0, 0.55),
    (0.3, "mean", 10.0, 0.3 * 0.55), (0.5, "mean", 5.0, 0.5 * 0.275),
])
def test_restoration_puts_back_the_models_fraction_of_the_end_or_mean_deficit(
        models, tmp_path, fraction, deficit, segment_fs, per_segment):
    """The "err10" model's total energy rises by 0.01 eV * t / tc within a segment (free
    flight, constant kinetic energy): the deficit at a segment's end is -0.01 eV * L / tc,
    its mean over the 10 check times L j / 10 is 0.55 of that, and restoring a fraction f
    of it lowers the next segment's kinetic energy by f times the deficit."""
    from tests.onnx_fixtures import with_metadata

    source = load_model(models["err10"], device="cpu").description
    props = source.to_metadata()
    for key, value in (("unroll_restore_fraction", fraction), ("unroll_restore_deficit", deficit)):
        if value is not None:
            props[f"gicnet.{key}"] = json.dumps(value)
    path = with_metadata(models["err10"], tmp_path / "restore.onnx", props)
    model = load_model(path, device="cpu")
    assert (model.description.restore_fraction, model.description.restore_deficit) == \
        (1.0 if fraction is None else fraction, deficit or "end")
    vel = thermal_velocities(4)
    traj = model.propagate(ETHANOL_POSITIONS_A, vel, 4 * segment_fs, segment_fs / 4,
                           segment_fs=segment_fs, **MECHANICS)[0]
    k = np.maximum(np.ceil(traj.time_fs / segment_fs - 1e-9) - 1, 0)
    expected = mom.kinetic_energy_eV(vel, MASSES) - 0.01 * per_segment * k
    np.testing.assert_allclose(traj.kinetic_energy, expected, atol=1e-6)
    assert abs(expected[-1] - expected[0]) > 1e-3  # the settings change something


def test_energy_restoration_is_on_by_default_only_for_models_with_energy(models):
    vel = thermal_velocities(4)
    assert _model(models, "err10").propagate(ETHANOL_POSITIONS_A, vel, 20.0, 5.0)[0].info[
        "restore_energy"] is True
    plain = _model(models, "no_energy_a")
    assert plain.propagate(ETHANOL_POSITIONS_A, vel, 20.0, 5.0)[0].info["restore_energy"] is False
    with pytest.raises(InputError, match="needs a model with an energy output"):
        plain.propagate(ETHANOL_POSITIONS_A, vel, 20.0, 5.0, restore_energy=True)


def test_shorter_segments_compound_the_models_own_steps(models):
    # The model scales the molecule about its centre of mass by (1 + 0.01 t / tc) per
    # segment: unrolled in 5 fs segments, after 5 fs + t it is (1 + 0.005)(1 + 0.001 t).
    model = _model(models, "grow")
    zero = np.zeros_like(ETHANOL_POSITIONS_A)
    traj = model.propagate(ETHANOL_POSITIONS_A, zero, 20.0, 2.5, segment_fs=5.0)[0]
    com = mom.centre_of_mass(ETHANOL_POSITIONS_A, MASSES)
    rel0 = ETHANOL_POSITIONS_A - com
    segment = np.maximum(np.ceil(traj.time_fs / 5.0 - 1e-9) - 1, 0)
    scale = 1.005 ** segment * (1 + 0.001 * (traj.time_fs - 5.0 * segment))
    np.testing.assert_allclose(traj.positions - com, scale[:, None, None] * rel0, atol=2e-6)
    assert traj.info["segment_fs"] == 5.0 and len(traj.info["segment_members"]) == 4
    assert model.segment_count(20.0, 2.5, 5.0) == 4 and model.segment_count(20.0, 2.5) == 2


@pytest.mark.parametrize("segment_fs", [0.0, -1.0, 10.5, np.nan])
def test_bad_segment_lengths(models, segment_fs):
    with pytest.raises(InputError, match="segment length must lie in"):
        _model(models, "free").propagate(ETHANOL_POSITIONS_A, thermal_velocities(1), 20.0, 1.0,
                                         segment_fs=segment_fs)


@pytest.mark.parametrize(("dt_fs", "n_times"), [(0.5, 20), (0.1, 100), (0.7, 23), (2.5, 12)])
def test_each_segment_time_is_predicted_once(dt_fs, n_times):
    from gicnet_runtime.unroll.segment import _segment_times

    checks = np.arange(1, 11) * 1.0
    frames = dt_fs * np.arange(1, 200)
    frames = frames[frames <= 10.0 * (1 + 1e-9)]
    times, n_frames, columns = _segment_times(frames, checks, 10.0)
    assert times.size == n_times and n_frames == frames.size
    np.testing.assert_array_equal(times[:n_frames], np.clip(frames, 0, 10))
    np.testing.assert_allclose(times[columns], checks, rtol=0, atol=1e-8)
    assert abs(times[columns[-1]] - 10.0) < 1e-8
    assert np.abs(times[:, None] - checks[None]).min(axis=0).max() < 1e-8
