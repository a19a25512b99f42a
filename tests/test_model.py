"""Model loading and one-segment prediction on analytic ONNX fixtures."""

import numpy as np
import pytest

from gicnet_runtime import load_model
from gicnet_runtime.core.model import DEFAULT_MODEL_DIR, model_files
from gicnet_runtime.errors import InputError, ModelError
from tests.onnx_fixtures import ETHANOL_POSITIONS_A, thermal_velocities, write_model

TIMES_FS = np.array([0.0, 0.5, 2.0, 3.7, 7.25, 10.0])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {
        "free": write_model(folder / "free.onnx"),
        "defective": write_model(folder / "defective.onnx", accel_A_per_fs2=(1e-3, 0, 0),
                                 spin_per_fs=(0.0, 0.0, 0.01), growth=0.05),
        "worse": write_model(folder / "worse.onnx", energy_error_eV=0.02),
        "better": write_model(folder / "better.onnx", energy_error_eV=-0.005),
        "other_tc": write_model(folder / "other_tc.onnx", tc_fs=5.0),
        "nan": write_model(folder / "nan.onnx", nan_after_fs=5.0, spare_load_check=True),
    }


def _state(count=None, seed=0):
    vel = thermal_velocities(seed, count=count)
    pos = ETHANOL_POSITIONS_A if count is None else np.broadcast_to(ETHANOL_POSITIONS_A, vel.shape)
    return np.array(pos), vel


def test_predict_at_zero_returns_the_inputs(models):
    pos, vel = _state(count=3)
    result = load_model(models["defective"], device="cpu").predict(pos, vel, [0.0])
    assert result.positions.shape == (3, 1, 9, 3)
    # Exactly the float32 inputs (within float32 precision of the values).
    np.testing.assert_allclose(result.positions[:, 0], pos, rtol=0, atol=4e-7)
    np.testing.assert_allclose(result.velocities[:, 0], vel, rtol=0, atol=1e-9)


def test_free_flight_matches_the_analytic_frames(models):
    pos, vel = _state()
    result = load_model(models["free"], device="cpu").predict(pos, vel, TIMES_FS)
    expected = pos + vel * TIMES_FS[:, None, None]
    np.testing.assert_allclose(result.positions, expected, atol=2e-6)
    np.testing.assert_allclose(result.velocities, np.broadcast_to(vel, expected.shape), atol=1e-8)
    assert result.potential_energy.shape == (TIMES_FS.size,)


def test_shuffled_times_give_the_same_frames(models):
    pos, vel = _state(count=2)
    model = load_model(models["defective"], device="cpu")
    order = np.random.default_rng(1).permutation(TIMES_FS.size)
    ordered = model.predict(pos, vel, TIMES_FS)
    shuffled = model.predict(pos, vel, TIMES_FS[order])
    np.testing.assert_array_equal(shuffled.positions, ordered.positions[:, order])
    np.testing.assert_array_equal(shuffled.velocities, ordered.velocities[:, order])
    np.testing.assert_array_equal(shuffled.potential_energy, ordered.potential_energy[:, order])


def test_batch_equals_single_runs(models):
    pos, vel = _state(count=4, seed=5)
    model = load_model(models["defective"], device="cpu")
    per_row_times = np.random.default_rng(2).uniform(0, 10, (4, 5))
    batch = model.predict(pos, vel, per_row_times)
    for b in range(4):
        single = model.predict(pos[b], vel[b], per_row_times[b])
        np.testing.assert_allclose(single.positions, batch.positions[b], rtol=0, atol=1e-6)
        np.testing.assert_allclose(single.velocities, batch.velocities[b], rtol=0, atol=1e-7)


def test_ensemble_predict_picks_the_member_with_the_smallest_energy_error(models):
    pos, vel = _state(count=2)
    model = load_model([models["worse"], models["better"]], device="cpu")
    result = model.predict(pos, vel, TIMES_FS, ensemble="select")
    np.testing.assert_array_equal(result.member, [1, 1])
    assert result.spread_A is None
    # better.onnx: total energy drifts by -0.005 eV * t / tc.
    single = load_model(models["better"], device="cpu").predict(pos, vel, TIMES_FS)
    np.testing.assert_array_equal(result.potential_energy, single.potential_energy)


def test_folder_is_an_ensemble(models):
    files = model_files(models["free"].parent)
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert len(files) == len(models)


def test_members_must_agree(models):
    with pytest.raises(ModelError, match="differ"):
        load_model([models["free"], models["other_tc"]], device="cpu")


def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path):
    import gicnet_runtime.core.model as runtime_model

    monkeypatch.setattr(runtime_model, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(ModelError, match="shipped model folder"):
        load_model()


def test_default_model_is_the_shipped_ensemble():
    model = load_model(device="cpu")
    assert [p.parent for p in model.paths] == [DEFAULT_MODEL_DIR] * len(model.paths)
    assert model.n_members >= 2 and model.description.n_atoms == 9
    # One ensemble file (one graph call per segment); the members also ship as files.
    assert [p.name for p in model.paths] == ["ensemble.onnx"]
    assert load_model(DEFAULT_MODEL_DIR / "members", device="cpu").n_members == model.n_members


@pytest.mark.parametrize("change, message", [
    (lambda p, v, t: (p[:, :5], v[:, :5], t), "shape"),
    (lambda p, v, t: (p, v[:, :, :2], t), "velocities shape"),
    (lambda p, v, t: (np.where(p > 1, np.nan, p), v, t), "NaN"),
    (lambda p, v, t: (p, v, [0.0, 10.5]), "within the segment"),
    (lambda p, v, t: (p, v, [-0.1]), "within the segment"),
    (lambda p, v, t: (p, v, [np.inf]), "NaN or inf"),
    (lambda p, v, t: (p, v, np.zeros((3, 2))), "times_fs must have shape"),
])
def test_bad_inputs_raise_input_error(models, change, message):
    pos, vel = _state(count=2)
    model = load_model(models["free"], device="cpu")
    with pytest.raises(InputError, match=message):
        model.predict(*change(pos, vel, TIMES_FS))


def test_folders_in_a_list_are_expanded(models, tmp_path):
    files = model_files([models["free"], models["free"].parent])
    assert files[0] == models["free"] and len(files) == 1 + len(models)
    with pytest.raises(ModelError, match="holds no .onnx files"):
        model_files([tmp_path])


def test_ensemble_predict_defaults_to_the_members_mean_and_spread(models):
    pos, vel = _state(count=2)
    one = [load_model(models[n], device="cpu").predict(pos, vel, TIMES_FS)
           for n in ("free", "defective")]
    result = load_model([models["free"], models["defective"]], device="cpu").predict(
        pos, vel, TIMES_FS)
    np.testing.assert_array_equal(result.member, [-1, -1])
    for name in ("positions", "velocities", "potential_energy"):
        expected = (getattr(one[0], name) + getattr(one[1], name)) / 2
        np.testing.assert_allclose(getattr(result, name), expected, rtol=0, atol=1e-12)
    # two members: each is half their distance from the mean
    half = np.linalg.norm(one[0].positions - one[1].positions, axis=-1) / 2
    np.testing.assert_allclose(result.spread_A, np.sqrt(np.mean(half ** 2, axis=-1)), atol=1e-12)
    assert result.spread_A[:, 0] == pytest.approx(0.0, abs=1e-6) and result.spread_A[0, -1] > 0.01


def test_ensemble_mean_leaves_out_a_member_that_fails(models):
    pos, vel = _state()
    free = load_model(models["free"], device="cpu").predict(pos, vel, TIMES_FS)
    result = load_model([models["nan"], models["free"]], device="cpu").predict(pos, vel, TIMES_FS)
    np.testing.assert_allclose(result.positions, free.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.spread_A, 0.0, atol=1e-12)
    with pytest.raises(ModelError, match="non-finite"):
        load_model([models["nan"], models["nan"]], device="cpu").predict(pos, vel, TIMES_FS)


def test_unknown_ensemble_mode_is_an_input_error(models):
    pos, vel = _state()
    with pytest.raises(InputError, match="ensemble must be one of mean, select"):
        load_model(models["free"], device="cpu").predict(pos, vel, TIMES_FS, ensemble="median")
