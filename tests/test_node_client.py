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


def _assert_same_frames(t: dict, ref) -> None:
    """A Node trajectory (JSON) equals a Python one: times, positions, velocities, energies."""
    np.testing.assert_array_equal(t["time_fs"], ref.time_fs)
    np.testing.assert_allclose(t["positions"], ref.positions, rtol=0, atol=POSITION_TOL_A)
    np.testing.assert_allclose(t["velocities"], ref.velocities, rtol=0,
                               atol=VELOCITY_TOL_A_PER_FS)
    np.testing.assert_allclose(t["kinetic_energy_eV"], ref.kinetic_energy, rtol=0,
                               atol=ENERGY_TOL_EV)
    if ref.potential_energy is None:
        assert t["potential_energy_eV"] is None
    else:
        np.testing.assert_allclose(t["potential_energy_eV"], ref.potential_energy, rtol=0,
                                   atol=ENERGY_TOL_EV)


def _unroll_args(restore_energy: bool | None, segment_fs: float | None) -> list[str]:
    """The Node client's options for Python's ``restore_energy`` and ``segment_fs``
    (None: leave the default to the client)."""
    args = [] if segment_fs is None else ["--segment-fs", repr(float(segment_fs))]
    if restore_energy is not None:
        args.append("--restore-energy" if restore_energy else "--no-restore-energy")
    return args


def _assert_info_is_description(node: str, path: Path, description) -> dict:
    info = json.loads(run_ok(node, "info", "--model", str(path)).stdout)
    for key, value in dataclasses.asdict(description).items():
        assert info[key] == json.loads(json.dumps(value)), key
    assert info["n_atoms"] == description.n_atoms
    return info


def test_info_is_the_python_description(node, model):
    _assert_info_is_description(node, MEMBER, model.description)


def test_info_without_unroll_segment_fs_says_null(node, tmp_path):
    """A model without gicnet.unroll_segment_fs (unrolled in segments of tc): null, as
    Python's None."""
    from tests.onnx_fixtures import write_model

    path = write_model(tmp_path / "fixture.onnx")
    description = load_model(path, device="cpu").description
    assert description.unroll_segment_fs is None
    assert _assert_info_is_description(node, path, description)["unroll_segment_fs"] is None


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


@pytest.mark.parametrize("restore_energy, segment", [
    (None, None), (False, None), (None, 2.5), (True, "tc"),
], ids=["defaults", "no-restore-energy", "segment-2.5", "segment-tc"])
def test_unrolled_segments_match_python(node, model, initial, tmp_path, restore_energy, segment):
    """--segments N unrolls N segments of L (the model's default, or --segment-fs) with the
    same energy restoration as Python's propagate given the same settings."""
    desc = model.description
    segment_fs = desc.tc_fs if segment == "tc" else segment
    out = tmp_path / "propagate.json"
    run_ok(node, "propagate", "--model", str(MEMBER), "--init", str(INIT),
           "--segments", str(SEGMENTS), "--dt-fs", str(DT_FS), "--out", str(out),
           *_unroll_args(restore_energy, segment_fs))
    length_fs = desc.default_segment_fs if segment_fs is None else segment_fs
    expected = model.propagate(initial.positions, initial.velocities, SEGMENTS * length_fs, DT_FS,
                               restore_energy=restore_energy, segment_fs=segment_fs)
    document = json.loads(out.read_text())
    assert document["segment_fs"] == expected[0].info["segment_fs"] == length_fs
    assert document["restore_energy"] is expected[0].info["restore_energy"]
    assert expected[0].info["restore_energy"] is (restore_energy is not False)
    frames = _frames(out)
    assert len(frames) == len(expected)
    for t, ref in zip(frames, expected, strict=True):
        assert "failure" not in t and "failure" not in ref.info
        assert len(ref.info["segment_members"]) == SEGMENTS
        # frame 0 is the file's state: ASE momenta -> Å/fs exactly as the Python reader
        np.testing.assert_array_equal(t["velocities"][0], ref.velocities[0])
        _assert_same_frames(t, ref)
        np.testing.assert_allclose(t["segment_energy_error_eV"],
                                   ref.info["segment_energy_error_eV"], rtol=0, atol=ENERGY_TOL_EV)


_RESTORE_SCRIPT = """
const er = require(process.argv[1]);
const doc = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const f64 = (x) => Float64Array.from(x.flat());
process.stdout.write(JSON.stringify({
  coordinates: er.stretchBendCoordinates(doc.ic_rows),
  restored: doc.cases.map((c) => Array.from(er.restoreKineticEnergy(
    f64(c.positions), f64(c.velocities), f64(c.masses), {bonds: c.bonds, angles: c.angles},
    c.target_eV))),
}));
"""


def _restoration_cases(description, positions) -> list[dict]:
    """States near ``positions`` (N, 3) Å of the model's molecule, with targets inside the
    clip, beyond it both ways and below what the rest of the motion holds; dependent
    coordinates (a bond twice); a linear angle (CO2)."""
    from gicnet_runtime import energy_restore, internal
    from gicnet_runtime import momentum as mom
    from gicnet_runtime.icdef import ICDefinition

    icdef = ICDefinition(description.ic_rows)
    bonds, angles = internal.row_bonds(icdef), internal.row_angles(icdef)
    masses = np.asarray(description.masses_amu, dtype=np.float64)
    rng = np.random.default_rng(0)
    cases = []
    for factor in (1.3, 0.7, 100.0, 0.01, -1.0, 1.2):
        pos = positions + rng.normal(0.0, 0.05, positions.shape)
        vel = rng.normal(0.0, 0.01, positions.shape) / np.sqrt(masses)[:, None]
        part = energy_restore.stretch_bend_velocities(pos, vel, masses, bonds, angles)
        target = mom.kinetic_energy_eV(vel - part, masses) \
            + factor * mom.kinetic_energy_eV(part, masses)
        cases.append((pos, vel, masses, bonds, angles, target))
    cases[-1] = (pos, vel, masses, np.concatenate([bonds, bonds[:1]]), angles, target)
    line = np.array([[-1.16, 0.0, 0.0], [0.0, 0.0, 0.0], [1.16, 0.0, 0.0]])
    cases.append((line, rng.normal(0.0, 0.005, (3, 3)), np.array([16.0, 12.0, 16.0]),
                  np.array([[1, 0], [2, 1]]), np.array([[2, 1, 0]]), 1.0))
    return [{"positions": p.tolist(), "velocities": v.tolist(), "masses": m.tolist(),
             "bonds": b.tolist(), "angles": a.tolist(), "target_eV": float(t)}
            for p, v, m, b, a, t in cases]


def test_energy_restoration_is_pythons(node, model, initial):
    """clients/node/src/energyRestore.js against gicnet_runtime.energy_restore: the IC-row
    bonds and angles it scales, and the restored velocities in every branch (a client that
    scaled the whole vibration instead fails here)."""
    from gicnet_runtime import energy_restore, internal
    from gicnet_runtime.icdef import ICDefinition

    desc = model.description
    ic_rows = [list(r) for r in desc.ic_rows]
    cases = _restoration_cases(desc, initial.positions[0])
    done = subprocess.run([node, "-e", _RESTORE_SCRIPT, str(CLIENT / "src" / "energyRestore.js")],
                          input=json.dumps({"ic_rows": ic_rows, "cases": cases}),
                          capture_output=True, text=True, timeout=NODE_TIMEOUT_S, check=True)
    got = json.loads(done.stdout)
    icdef = ICDefinition(desc.ic_rows)
    assert got["coordinates"]["bonds"] == internal.row_bonds(icdef).tolist()
    assert got["coordinates"]["angles"] == internal.row_angles(icdef).tolist()
    changed = []
    for case, restored in zip(cases, got["restored"], strict=True):
        vel = np.asarray(case["velocities"])
        expected = energy_restore.restore_kinetic_energy(
            np.asarray(case["positions"]), vel, np.asarray(case["masses"]),
            np.asarray(case["bonds"]), np.asarray(case["angles"]).reshape(-1, 3),
            case["target_eV"])
        np.testing.assert_allclose(np.reshape(restored, vel.shape), expected, rtol=0,
                                   atol=1e-14)
        changed.append(not np.array_equal(expected, vel))
    # all change but the impossible target (factor -1) and the linear angle
    assert changed == [True, True, True, True, False, True, False]


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
                               2 * model.description.default_segment_fs, 2.5)
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
    (["propagate", "--model", str(MEMBER), "--segments", "1", "--dt-fs", "1",
      "--segment-fs", "0"], "--segment-fs must be a positive number"),
    (["propagate", "--model", str(MEMBER), "--segments", "1", "--dt-fs", "1",
      "--segment-fs", "1000"], "segment length must lie in (0,"),
    (["propagate", "--model", str(MEMBER), "--segments", "1", "--dt-fs", "1",
      "--restore-energy", "--no-restore-energy"], "not both"),
    (["frobnicate"], "unknown command"),
])
def test_errors_are_one_line_with_exit_code_1(node, args, message):
    done = run_client(node, *args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr


def test_energy_restoration_needs_energy(node, tmp_path):
    """Asking for energy restoration with a model without energy is an error, as in Python."""
    from tests.onnx_fixtures import ETHANOL_POSITIONS_A, thermal_velocities, write_model

    path = write_model(tmp_path / "plain.onnx", has_energy=False)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"positions": ETHANOL_POSITIONS_A.tolist(),
                                 "velocities": thermal_velocities(1).tolist()}))
    done = run_client(node, "propagate", "--model", str(path), "--init", str(state),
                      "--segments", "1", "--dt-fs", "1", "--restore-energy")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "energy restoration needs a model with an energy output" in done.stderr


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
    ({"energy_error_eV": 0.01}, False),
    ({"nan_after_fs": 5.0}, True),
    ({"growth": 1.0}, True),
], ids=["momentum-defects", "no-energy", "energy-drift", "nan", "explodes"])
def test_analytic_models_unroll_like_python(node, tmp_path, spec, fails):
    """Analytic fixtures: restoration of real momentum defects and of an energy drift, no
    energy output, failures."""
    from tests.onnx_fixtures import ETHANOL_POSITIONS_A, thermal_velocities, write_model

    path = write_model(tmp_path / "fixture.onnx", **spec)
    velocities = np.stack([thermal_velocities(1), thermal_velocities(2)])
    positions = np.stack([ETHANOL_POSITIONS_A] * 2)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"positions": positions.tolist(),
                                 "velocities": velocities.tolist()}))
    model = load_model(path, device="cpu")
    duration_fs = 4 * model.description.default_segment_fs
    settings = [None, False] if "energy_error_eV" in spec else [None]
    kinetic = []
    for restore_energy in settings:
        out = tmp_path / "frames.json"
        run_ok(node, "propagate", "--model", str(path), "--init", str(state), "--segments", "4",
               "--dt-fs", "2.5", "--out", str(out), *_unroll_args(restore_energy, None))
        expected = model.propagate(positions, velocities, duration_fs, 2.5,
                                   restore_energy=restore_energy)
        frames = _frames(out)
        for t, ref in zip(frames, expected, strict=True):
            _assert_same_frames(t, ref)
            assert ("failure" in ref.info) == fails == ("failure" in t)
            if fails:
                assert ref.info["failure"].endswith(t["failure"])
        kinetic.append(np.stack([t["kinetic_energy_eV"] for t in frames]))
    if len(kinetic) == 2:
        # the model gains 0.01 eV per segment; restoration takes it out of the velocities
        # (a client without restoration would match the second run, not the first)
        assert np.max(np.abs(kinetic[0] - kinetic[1])) > 100 * ENERGY_TOL_EV
