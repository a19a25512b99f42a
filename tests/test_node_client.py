"""The Node.js client (clients/node) against the Python runtime on the shipped model.

Node and its packages are part of the test setup: the session fixture fails (never skips)
when ``node`` or ``npm`` is missing, and installs the pinned packages with
``npm ci --ignore-scripts`` when clients/node/node_modules is absent or out of date.
"""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gicnet_runtime import load_model, read_initial_conditions
from gicnet_runtime.trajio import read_trajectory

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "node"
CLI = CLIENT / "src" / "cli.js"
MEMBER = ROOT / "exported" / "ethanol" / "member_0.onnx"
INIT = ROOT / "exported" / "ethanol" / "initial.extxyz"
#: Largest position difference between the Node and Python frames, Å (the issue's bound).
POSITION_TOL_A = 1e-5
#: Velocities and energies: the same float32 graph and float64 restoration on both sides.
VELOCITY_TOL_A_PER_FS = 1e-6
ENERGY_TOL_EV = 1e-4
#: Unrolled segments and output frame spacing (fs) for the long-trajectory comparison.
SEGMENTS = 5
DT_FS = 0.5
PREDICT_TIMES_FS = "0,0.5,1.25,2.5,5,7.5,10"
NPM_INSTALL_TIMEOUT_S = 600
NODE_TIMEOUT_S = 120


def _installed_version() -> str | None:
    manifest = CLIENT / "node_modules" / "onnxruntime-node" / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def _locked_version() -> str:
    lock = json.loads((CLIENT / "package-lock.json").read_text())
    return lock["packages"]["node_modules/onnxruntime-node"]["version"]


@pytest.fixture(scope="session")
def node() -> str:
    """Path of ``node``, with the client's pinned packages installed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (Node.js >= 18) is not on PATH; the Node client tests need it")
    if _installed_version() != _locked_version():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not on PATH; it is needed to install clients/node's packages")
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                              cwd=CLIENT, capture_output=True, text=True,
                              timeout=NPM_INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            pytest.fail(f"npm ci in {CLIENT} failed:\n{done.stderr[-2000:]}")
    return node


def run_client(node: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([node, str(CLI), *args], capture_output=True, text=True,
                          timeout=NODE_TIMEOUT_S, cwd=ROOT)


def run_ok(node: str, *args: str) -> subprocess.CompletedProcess:
    done = run_client(node, *args)
    assert done.returncode == 0, f"node client failed: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def model():
    return load_model(MEMBER, device="cpu")


@pytest.fixture(scope="module")
def initial():
    return read_initial_conditions(INIT)


def _frames(path: Path) -> list[dict]:
    return [{k: np.asarray(v) if isinstance(v, list) else v for k, v in t.items()}
            for t in json.loads(path.read_text())["trajectories"]]


def test_info_is_the_python_description(node, model):
    info = json.loads(run_ok(node, "info", "--model", str(MEMBER)).stdout)
    for key, value in dataclasses.asdict(model.description).items():
        assert info[key] == json.loads(json.dumps(value)), key
    assert info["n_atoms"] == model.description.n_atoms


def test_predict_matches_python(node, model, initial, tmp_path):
    out = tmp_path / "predict.json"
    run_ok(node, "predict", "--model", str(MEMBER), "--init", str(INIT),
           "--times", PREDICT_TIMES_FS, "--out", str(out))
    times = [float(t) for t in PREDICT_TIMES_FS.split(",")]
    expected = model.predict(initial.positions, initial.velocities, times)
    frames = _frames(out)
    assert len(frames) == len(initial)
    for b, t in enumerate(frames):
        np.testing.assert_array_equal(t["time_fs"], times)
        np.testing.assert_allclose(t["positions"], expected.positions[b], rtol=0,
                                   atol=POSITION_TOL_A)
        np.testing.assert_allclose(t["velocities"], expected.velocities[b], rtol=0,
                                   atol=VELOCITY_TOL_A_PER_FS)
        np.testing.assert_allclose(t["potential_energy_eV"], expected.potential_energy[b],
                                   rtol=0, atol=ENERGY_TOL_EV)


def test_unrolled_segments_match_python(node, model, initial, tmp_path):
    out = tmp_path / "propagate.json"
    run_ok(node, "propagate", "--model", str(MEMBER), "--init", str(INIT),
           "--segments", str(SEGMENTS), "--dt-fs", str(DT_FS), "--out", str(out))
    duration_fs = SEGMENTS * model.description.tc_fs
    expected = model.propagate(initial.positions, initial.velocities, duration_fs, DT_FS)
    frames = _frames(out)
    assert len(frames) == len(expected)
    for t, ref in zip(frames, expected, strict=True):
        assert "failure" not in t and "failure" not in ref.info
        np.testing.assert_array_equal(t["time_fs"], ref.time_fs)
        # frame 0 is the file's state: ASE momenta -> Å/fs exactly as the Python reader
        np.testing.assert_array_equal(t["velocities"][0], ref.velocities[0])
        np.testing.assert_allclose(t["positions"], ref.positions, rtol=0, atol=POSITION_TOL_A)
        np.testing.assert_allclose(t["velocities"], ref.velocities, rtol=0,
                                   atol=VELOCITY_TOL_A_PER_FS)
        np.testing.assert_allclose(t["potential_energy_eV"], ref.potential_energy, rtol=0,
                                   atol=ENERGY_TOL_EV)
        np.testing.assert_allclose(t["kinetic_energy_eV"], ref.kinetic_energy, rtol=0,
                                   atol=ENERGY_TOL_EV)
        np.testing.assert_allclose(t["segment_energy_error_eV"],
                                   ref.info["segment_energy_error_eV"], rtol=0, atol=ENERGY_TOL_EV)


def test_json_state_in_extxyz_frames_out(node, model, initial, tmp_path):
    """A JSON initial state of two conditions; the extended XYZ output reads back in gicnet."""
    pick = [3, 7]
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"atomic_numbers": initial.atomic_numbers.tolist(),
                                 "positions": initial.positions[pick].tolist(),
                                 "velocities": initial.velocities[pick].tolist()}))
    out = tmp_path / "traj.extxyz"
    run_ok(node, "propagate", "--model", str(MEMBER), "--init", str(state),
           "--segments", "2", "--dt-fs", "2.5", "--out", str(out))
    expected = model.propagate(initial.positions[pick], initial.velocities[pick],
                               2 * model.description.tc_fs, 2.5)
    for b, ref in enumerate(expected):
        got = read_trajectory(tmp_path / f"traj_{b:03d}.extxyz")
        np.testing.assert_allclose(got.time_fs, ref.time_fs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.positions, ref.positions, rtol=0, atol=POSITION_TOL_A)
        np.testing.assert_allclose(got.velocities, ref.velocities, rtol=0,
                                   atol=VELOCITY_TOL_A_PER_FS)
        np.testing.assert_allclose(got.potential_energy, ref.potential_energy, rtol=0,
                                   atol=ENERGY_TOL_EV)


def test_single_json_state_is_one_trajectory(node, model, initial, tmp_path):
    state = tmp_path / "one.json"
    state.write_text(json.dumps({"positions": initial.positions[0].tolist(),
                                 "velocities": initial.velocities[0].tolist()}))
    done = run_ok(node, "predict", "--model", str(MEMBER), "--init", str(state), "--times", "5")
    frames = json.loads(done.stdout)["trajectories"]
    expected = model.predict(initial.positions[0], initial.velocities[0], [5.0])
    assert len(frames) == 1
    np.testing.assert_allclose(frames[0]["positions"], expected.positions, rtol=0,
                               atol=POSITION_TOL_A)


@pytest.mark.parametrize("args, message", [
    (["predict", "--model", "missing.onnx", "--times", "1"], "model file not found"),
    (["predict", "--model", str(MEMBER), "--times", "11"], "within the segment [0, 10]"),
    (["propagate", "--model", str(MEMBER), "--segments", "0", "--dt-fs", "1"],
     "--segments must be a positive integer"),
    (["frobnicate"], "unknown command"),
])
def test_errors_are_one_line_with_exit_code_1(node, args, message):
    done = run_client(node, *args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr


def test_wrong_atoms_are_refused(node, initial, tmp_path):
    state = tmp_path / "swapped.json"
    numbers = initial.atomic_numbers.copy()
    numbers[[0, 2]] = numbers[[2, 0]]
    state.write_text(json.dumps({"atomic_numbers": numbers.tolist(),
                                 "positions": initial.positions[0].tolist(),
                                 "velocities": initial.velocities[0].tolist()}))
    done = run_client(node, "predict", "--model", str(MEMBER), "--init", str(state), "--times", "1")
    assert done.returncode == 1 and "atom order must match" in done.stderr


def test_contract_doc_lists_every_metadata_key():
    """docs/onnx-contract.md's metadata table names exactly the shipped file's keys."""
    import onnx

    doc = (ROOT / "docs" / "onnx-contract.md").read_text()
    documented = set(re.findall(r"^\| `(gicnet\.[a-z_A-Z]+)` \|", doc, flags=re.MULTILINE))
    shipped = {p.key for p in onnx.load(str(MEMBER), load_external_data=False).metadata_props}
    assert documented == shipped


@pytest.mark.parametrize("spec, fails", [
    ({"accel_A_per_fs2": (2e-4, -1e-4, 0.0), "spin_per_fs": (0.0, 1e-3, 3e-3)}, False),
    ({"has_energy": False, "spin_per_fs": (1e-3, 0.0, 0.0)}, False),
    ({"nan_after_fs": 5.0}, True),
    ({"growth": 1.0}, True),
], ids=["momentum-defects", "no-energy", "nan", "explodes"])
def test_analytic_models_unroll_like_python(node, tmp_path, spec, fails):
    """Analytic fixtures: restoration of real momentum defects, no energy output, failures."""
    from tests.onnx_fixtures import ETHANOL_POSITIONS_A, thermal_velocities, write_model

    path = write_model(tmp_path / "fixture.onnx", **spec)
    velocities = np.stack([thermal_velocities(1), thermal_velocities(2)])
    positions = np.stack([ETHANOL_POSITIONS_A] * 2)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"positions": positions.tolist(),
                                 "velocities": velocities.tolist()}))
    out = tmp_path / "frames.json"
    run_ok(node, "propagate", "--model", str(path), "--init", str(state), "--segments", "4",
           "--dt-fs", "2.5", "--out", str(out))
    expected = load_model(path, device="cpu").propagate(positions, velocities, 40.0, 2.5)
    for t, ref in zip(_frames(out), expected, strict=True):
        np.testing.assert_array_equal(t["time_fs"], ref.time_fs)
        np.testing.assert_allclose(t["positions"], ref.positions, rtol=0, atol=POSITION_TOL_A)
        np.testing.assert_allclose(t["velocities"], ref.velocities, rtol=0,
                                   atol=VELOCITY_TOL_A_PER_FS)
        if ref.potential_energy is None:
            assert t["potential_energy_eV"] is None
        assert ("failure" in ref.info) == fails == ("failure" in t)
        if fails:
            assert ref.info["failure"].endswith(t["failure"])
