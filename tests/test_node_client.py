"""The Node.js client (clients/node) against the Python runtime on the shipped model.

Single members, the shipped ensemble (a folder of member files and the ensemble file),
ensemble files built here from the member files, and analytic ensembles whose member
choices and backtracking are known: Node must choose the same member for every segment,
step back as often and give the same frames as gicnet_runtime.

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
from gicnet_runtime.errors import ModelError
from gicnet_runtime.io.formats import read_trajectory

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "node"
CLI = CLIENT / "src" / "cli.js"
SHIPPED = ROOT / "exported" / "ethanol"
#: The shipped members as single-network files: exported/ethanol/members/ when the shipped
#: model is an ensemble file, else exported/ethanol/ itself (a folder of member files).
MEMBERS_DIR = SHIPPED / "members" if (SHIPPED / "members").is_dir() else SHIPPED
MEMBER_FILES = sorted(MEMBERS_DIR.glob("member_*.onnx"))
MEMBER = MEMBER_FILES[0]
#: The shipped ensemble file (format version 2).
ENSEMBLE_FILE = SHIPPED / "ensemble.onnx"
INIT = SHIPPED / "initial.extxyz"
#: Metadata keys that only ensemble files carry.
ENSEMBLE_KEYS = {"gicnet.n_members", "gicnet.member_validation"}
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


def _assert_same_choices(t: dict, ref) -> None:
    """A Node trajectory (JSON) made the Python one's choices: the member of every segment,
    the backtracks, the segments over the threshold, their energy errors and any failure."""
    for key in ("segment_members", "backtracks", "segments_over_threshold"):
        assert np.asarray(t[key]).tolist() == ref.info[key], key
    if "segment_energy_error_eV" in ref.info:
        np.testing.assert_allclose(t["segment_energy_error_eV"],
                                   ref.info["segment_energy_error_eV"], rtol=0, atol=ENERGY_TOL_EV)
    else:
        assert "segment_energy_error_eV" not in t
    assert ("failure" in t) == ("failure" in ref.info)
    if "failure" in ref.info:
        assert ref.info["failure"].endswith(t["failure"])


def _max_differences(frames: list[dict], expected) -> dict[str, float]:
    """Largest Node - Python differences over all trajectories: positions Å, velocities
    Å/fs, potential and kinetic energies eV."""
    pairs = {"positions_A": ("positions", "positions"),
             "velocities_A_per_fs": ("velocities", "velocities"),
             "potential_eV": ("potential_energy_eV", "potential_energy"),
             "kinetic_eV": ("kinetic_energy_eV", "kinetic_energy")}
    return {name: max(float(np.max(np.abs(np.asarray(t[a], dtype=float) - getattr(r, b))))
                      for t, r in zip(frames, expected, strict=True))
            for name, (a, b) in pairs.items()}


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
    info = _assert_info_is_description(node, MEMBER, model.description)
    assert info["n_members"] is None and info["model_members"] == 1


def test_default_model_is_the_shipped_folder(node):
    """Without --model the client opens exported/ethanol as Python's load_model() does:
    every .onnx file there, the same members."""
    shipped = load_model(device="cpu")
    info = json.loads(run_ok(node, "info").stdout)
    assert [Path(p).resolve() for p in info["model_files"]] == [p.resolve() for p in shipped.paths]
    assert info["model_members"] == shipped.n_members >= 2


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
        _assert_same_prediction(t, expected, b)


def _assert_same_prediction(t: dict, expected, b: int) -> None:
    """Node's frames ``t`` of initial condition ``b`` against Python's prediction."""
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
        assert ref.info["segment_members"] == [0] * SEGMENTS
        # frame 0 is the file's state: ASE momenta -> Å/fs exactly as the Python reader
        # (which stores unrolled frames in float32, the network's precision)
        np.testing.assert_array_equal(np.float32(t["velocities"][0]), ref.velocities[0])
        _assert_same_frames(t, ref)
        _assert_same_choices(t, ref)


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
    from gicnet_runtime.core import internal
    from gicnet_runtime.core.icdef import ICDefinition
    from gicnet_runtime.unroll import energy_restore
    from gicnet_runtime.unroll import momentum as mom

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
    """clients/node/src/energyRestore.js against gicnet_runtime.unroll.energy_restore: the IC-row
    bonds and angles it scales, and the restored velocities in every branch (a client that
    scaled the whole vibration instead fails here)."""
    from gicnet_runtime.core import internal
    from gicnet_runtime.core.icdef import ICDefinition
    from gicnet_runtime.unroll import energy_restore

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


#: A single member and its starts (initial.extxyz lies in the shipped folder, not next to it).
ON_MEMBER = ["--model", str(MEMBER), "--init", str(INIT)]


@pytest.mark.parametrize("args, message", [
    (["predict", "--model", "missing.onnx", "--times", "1"], "model file not found"),
    (["predict", *ON_MEMBER, "--times", "11"], "within the segment [0, 10]"),
    (["propagate", *ON_MEMBER, "--segments", "0", "--dt-fs", "1"],
     "--segments must be a positive integer"),
    (["propagate", *ON_MEMBER, "--segments", "1", "--dt-fs", "1", "--segment-fs", "0"],
     "--segment-fs must be a positive number"),
    (["propagate", *ON_MEMBER, "--segments", "1", "--dt-fs", "1", "--segment-fs", "1000"],
     "segment length must lie in (0,"),
    (["propagate", *ON_MEMBER, "--segments", "1", "--dt-fs", "1", "--restore-energy",
      "--no-restore-energy"], "not both"),
    (["propagate", *ON_MEMBER, "--segments", "1", "--dt-fs", "1", "--energy-threshold-eV", "0"],
     "--energy-threshold-eV must be a positive number"),
    (["predict", *ON_MEMBER, "--times", "1", "--ensemble", "median"],
     "ensemble must be one of mean, select"),
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
    """docs/onnx-contract.md's metadata table names exactly the shipped files' keys: those
    of a member file and those of the ensemble file."""
    import onnx

    doc = (ROOT / "docs" / "onnx-contract.md").read_text()
    documented = set(re.findall(r"^\| `(gicnet\.[a-z_A-Z]+)` \|", doc, flags=re.MULTILINE))
    keys = lambda path: {p.key for p in onnx.load(str(path), load_external_data=False)  # noqa: E731
                         .metadata_props}
    member = keys(MEMBER)
    assert not member & ENSEMBLE_KEYS
    ensemble = keys(ENSEMBLE_FILE)
    # optional unrolling settings a file carries only when set at export
    restore = {f"gicnet.{k}" for k in dataclasses.asdict(load_model(MEMBER, device="cpu")
                                                           .description) if "restore" in k}
    assert restore == {"gicnet.unroll_restore_fraction", "gicnet.unroll_restore_deficit"}
    assert documented == member | ensemble | restore
    assert ENSEMBLE_KEYS <= ensemble


@pytest.mark.parametrize("spec, fails", [
    ({"accel_A_per_fs2": (2e-4, -1e-4, 0.0), "spin_per_fs": (0.0, 1e-3, 3e-3)}, False),
    ({"has_energy": False, "spin_per_fs": (1e-3, 0.0, 0.0)}, False),
    ({"energy_error_eV": 0.01}, False),
    ({"nan_after_fs": 5.0, "spare_load_check": True}, True),
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
        # The Node client has no physical-sanity checks (docs/robustness.md), and the
        # fixtures' free flight breaks bonds within these 40 fs: Python takes them as warnings.
        expected = model.propagate(positions, velocities, duration_fs, 2.5,
                                   restore_energy=restore_energy, unphysical="warn")
        frames = _frames(out)
        for t, ref in zip(frames, expected, strict=True):
            _assert_same_frames(t, ref)
            _assert_same_choices(t, ref)
            assert ("failure" in ref.info) == fails == ("failure" in t)
        kinetic.append(np.stack([t["kinetic_energy_eV"] for t in frames]))
    if len(kinetic) == 2:
        # the model gains 0.01 eV per segment; restoration takes it out of the velocities
        # (a client without restoration would match the second run, not the first)
        assert np.max(np.abs(kinetic[0] - kinetic[1])) > 100 * ENERGY_TOL_EV


# --- ensembles -------------------------------------------------------------------------


def _ensemble_file(members: list[Path], path: Path) -> Path:
    """An ensemble file (format version 2) of the given member files, built the simple way:
    the member graphs side by side on the shared inputs, each output stacked on a leading
    member axis (Unsqueeze + Concat), member 0's metadata with ``gicnet.n_members``."""
    import onnx
    from onnx import TensorProto, helper

    loaded = [onnx.load(str(p)) for p in members]
    graphs = [onnx.compose.add_prefix(m, f"m{i}_", rename_inputs=False).graph
              for i, m in enumerate(loaded)]
    nodes = [n for g in graphs for n in g.node]
    inits = [t for g in graphs for t in g.initializer]
    inits.append(helper.make_tensor("member_axis", TensorProto.INT64, [1], [0]))
    outputs = []
    for out in loaded[0].graph.output:
        stacked = []
        for i in range(len(graphs)):
            stacked.append(f"m{i}_{out.name}_stacked")
            nodes.append(helper.make_node("Unsqueeze", [f"m{i}_{out.name}", "member_axis"],
                                          [stacked[-1]]))
        nodes.append(helper.make_node("Concat", stacked, [out.name], axis=0))
        outputs.append(helper.make_tensor_value_info(out.name, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "ensemble", list(loaded[0].graph.input), outputs,
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=list(loaded[0].opset_import))
    model.ir_version = loaded[0].ir_version
    props = {p.key: p.value for p in loaded[0].metadata_props}
    props.update({"gicnet.format_version": "2", "gicnet.n_members": json.dumps(len(members)),
                  "gicnet.member_validation": json.dumps(
                      [json.loads({p.key: p.value for p in m.metadata_props}
                                  .get("gicnet.validation", "{}")) for m in loaded])})
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def _with_metadata(source: Path, target: Path, **changes) -> Path:
    """A copy of model file ``source`` at ``target`` with metadata values replaced
    (``gicnet.<key>`` = JSON of each value; None removes the key)."""
    import onnx

    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(f"gicnet.{key}", None)
        else:
            props[f"gicnet.{key}"] = json.dumps(value)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))
    return target


def _assert_unrolls_like_python(node, node_model: Path, python_model, initial, out: Path,
                                energy_threshold_eV: float | None = None) -> list:
    """Node's --model ``node_model`` against Python's ``python_model`` over SEGMENTS
    segments of the model's default length; returns Python's trajectories."""
    args = [] if energy_threshold_eV is None else ["--energy-threshold-eV",
                                                   repr(energy_threshold_eV)]
    run_ok(node, "propagate", "--model", str(node_model), "--init", str(INIT),
           "--segments", str(SEGMENTS), "--dt-fs", str(DT_FS), "--out", str(out), *args)
    document = json.loads(out.read_text())
    kwargs = {} if energy_threshold_eV is None else {"energy_threshold_eV": energy_threshold_eV}
    length_fs = python_model.description.default_segment_fs
    expected = python_model.propagate(initial.positions, initial.velocities,
                                      SEGMENTS * length_fs, DT_FS, **kwargs)
    assert len(document["members"]) == python_model.n_members
    frames = _frames(out)
    for t, ref in zip(frames, expected, strict=True):
        assert len(ref.info["segment_members"]) == SEGMENTS and "failure" not in ref.info
        _assert_same_frames(t, ref)
        _assert_same_choices(t, ref)
    print("max |Node - Python|:", _max_differences(frames, expected))
    return expected


@pytest.fixture(scope="module")
def members():
    """The shipped ensemble's members as single files (Python)."""
    model = load_model(MEMBERS_DIR, device="cpu")
    assert model.n_members >= 2 and model.paths == MEMBER_FILES
    return model


def test_members_folder_unrolls_like_python(node, members, initial, tmp_path):
    """A folder of member files: every member predicts every segment and the one with the
    smallest energy error is used; both members get used somewhere."""
    expected = _assert_unrolls_like_python(node, MEMBERS_DIR, members, initial,
                                           tmp_path / "folder.json")
    used = {m for ref in expected for m in ref.info["segment_members"]}
    assert used == set(range(members.n_members))


def test_ensemble_file_unrolls_like_python(node, initial, tmp_path):
    """The shipped ensemble file (members on a leading output axis) against Python on the
    same file."""
    model = load_model(ENSEMBLE_FILE, device="cpu")
    assert model.n_members >= 2 and model.description.n_members == model.n_members
    info = json.loads(run_ok(node, "info", "--model", str(ENSEMBLE_FILE)).stdout)
    assert info["n_members"] == info["model_members"] == model.n_members
    assert info["format_version"] == 2
    _assert_unrolls_like_python(node, ENSEMBLE_FILE, model, initial, tmp_path / "file.json")


def test_built_ensemble_file_and_mixed_folder_unroll_like_python(node, initial, tmp_path):
    """Ensemble files built here from the member files: one of the members in reverse order
    runs like the list of those files, and a folder of a one-member ensemble file and a
    single file (name order) like the same list: members are the files' members in order."""
    reverse = MEMBER_FILES[::-1]
    python = load_model(reverse, device="cpu")
    built = _ensemble_file(reverse, tmp_path / "reverse.onnx")
    _assert_unrolls_like_python(node, built, python, initial, tmp_path / "built.json")
    folder = tmp_path / "mixed"
    folder.mkdir()
    _ensemble_file(reverse[:1], folder / "a_ensemble_of_one.onnx")
    shutil.copy(reverse[1], folder / "b_single.onnx")
    _assert_unrolls_like_python(node, folder, python, initial, tmp_path / "mixed.json")
    document = json.loads((tmp_path / "mixed.json").read_text())
    assert document["members"] == ["a_ensemble_of_one.onnx[0]", "b_single.onnx"]


@pytest.mark.parametrize("fraction, deficit", [(0.3, "mean"), (0.5, "end"), (None, "mean")])
def test_restoration_settings_unroll_like_python(node, initial, tmp_path, fraction, deficit):
    """The shipped ensemble file with unroll_restore_fraction and unroll_restore_deficit in
    its metadata: Node restores the same part of each segment's deficit as Python, and the
    frames differ from those of restoring all of the deficit at the end."""
    path = _with_metadata(ENSEMBLE_FILE, tmp_path / "restore.onnx",
                          unroll_restore_fraction=fraction, unroll_restore_deficit=deficit)
    model = load_model(path, device="cpu")
    assert model.description.restore_deficit == deficit
    info = json.loads(run_ok(node, "info", "--model", str(path)).stdout)
    assert (info["unroll_restore_fraction"], info["unroll_restore_deficit"]) == (fraction, deficit)
    expected = _assert_unrolls_like_python(node, path, model, initial, tmp_path / "restore.json")
    every = _with_metadata(ENSEMBLE_FILE, tmp_path / "full.onnx", unroll_restore_fraction=1.0,
                           unroll_restore_deficit="end")
    full = load_model(every, device="cpu").propagate(
        initial.positions, initial.velocities, SEGMENTS * model.description.default_segment_fs,
        DT_FS)
    assert max(np.abs(a.velocities[-1] - b.velocities[-1]).max()
               for a, b in zip(expected, full, strict=True)) > 1e-4


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_reversal_correction_unrolls_like_python(node, initial, tmp_path, share):
    """The shipped ensemble file with unroll_reversal_share in its metadata: Node corrects
    each segment's start as Python does (./reversal.js against gicnet_runtime.unroll.
    reversal), and the frames differ from those without the correction."""
    path = _with_metadata(ENSEMBLE_FILE, tmp_path / "reversal.onnx", unroll_reversal_share=share)
    model = load_model(path, device="cpu")
    assert model.description.reversal_share == share
    info = json.loads(run_ok(node, "info", "--model", str(path)).stdout)
    assert info["unroll_reversal_share"] == share
    expected = _assert_unrolls_like_python(node, path, model, initial, tmp_path / "reversal.json")
    plain = _with_metadata(ENSEMBLE_FILE, tmp_path / "plain.onnx", unroll_reversal_share=0.0)
    other = load_model(plain, device="cpu").propagate(
        initial.positions, initial.velocities, SEGMENTS * model.description.default_segment_fs,
        DT_FS)
    assert max(np.abs(a.positions[-1] - b.positions[-1]).max()
               for a, b in zip(expected, other, strict=True)) > 1e-5


_REVERSAL_SCRIPT = """
const [reversalPath, modelPath, file] = process.argv.slice(1);
const {correctedStarts} = require(reversalPath);
const {Model} = require(modelPath);
const doc = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
(async () => {
  const model = await Model.load(file);
  const starts = doc.positions.map((p, a) => ({positions: Float64Array.from(p.flat()),
    velocities: Float64Array.from(doc.velocities[a].flat())}));
  const out = await correctedStarts((p, v, t) => model.run(p, v, t), starts,
    Float64Array.from(doc.masses), doc.segment_fs, doc.share, doc.reference);
  process.stdout.write(JSON.stringify(out.map((c) => ({applied: c.applied,
    positions: Array.from(c.positions), velocities: Array.from(c.velocities)}))));
})();
"""


def test_reversal_guards_are_pythons(node, initial):
    """clients/node/src/reversal.js's correctedStarts against gicnet_runtime.unroll.reversal:
    the shipped ensemble's 10 starts with references that make starts 0-2 more than 1
    kcal/mol too hot (not corrected) and the others not (corrected), the same starts and
    the same decisions."""
    from gicnet_runtime.core.ensemble import reference_energy_eV
    from gicnet_runtime.unroll import reversal

    model = load_model(ENSEMBLE_FILE, device="cpu")
    masses = np.asarray(model.description.masses_amu)
    pos, vel = initial.positions, initial.velocities
    _, _, potential0 = reversal.round_trip_defect(model.run, pos, vel, 10.0)
    excess = np.where(np.arange(len(pos)) < 3, 1.5, 0.5) * reversal.MAX_EXCESS_EV
    reference = reference_energy_eV(potential0, vel, masses) - excess
    expected = reversal.corrected_start(model.run, pos, vel, masses, 10.0, 0.5, reference)
    assert expected.applied.tolist() == [False] * 3 + [True] * (len(pos) - 3)
    done = subprocess.run(
        [node, "-e", _REVERSAL_SCRIPT, str(CLIENT / "src" / "reversal.js"),
         str(CLIENT / "src" / "model.js"), str(ENSEMBLE_FILE)],
        input=json.dumps({"positions": pos.tolist(), "velocities": vel.tolist(),
                          "masses": masses.tolist(), "segment_fs": 10.0, "share": 0.5,
                          "reference": reference.tolist()}),
        capture_output=True, text=True, timeout=NODE_TIMEOUT_S, check=True)
    got = json.loads(done.stdout)
    assert [c["applied"] for c in got] == expected.applied.tolist()
    np.testing.assert_allclose([c["positions"] for c in got],
                               expected.positions.reshape(len(pos), -1), rtol=0, atol=1e-12)
    np.testing.assert_allclose([c["velocities"] for c in got],
                               expected.velocities.reshape(len(pos), -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("changes, message", [
    ({"unroll_reversal_share": -0.5}, "unroll_reversal_share must lie in [0, 1]"),
    ({"unroll_reversal_share": 2}, "unroll_reversal_share must lie in [0, 1]"),
    ({"unroll_restore_fraction": 0}, "unroll_restore_fraction must lie in (0, 1]"),
    ({"unroll_restore_fraction": 1.5}, "unroll_restore_fraction must lie in (0, 1]"),
    ({"unroll_restore_deficit": "start"}, "unroll_restore_deficit must be one of end, mean"),
])
def test_bad_restoration_settings_are_refused_in_one_line(node, tmp_path, changes, message):
    path = _with_metadata(MEMBER, tmp_path / "bad.onnx", **changes)
    with pytest.raises(ModelError, match=re.escape(message)):
        load_model(path, device="cpu")
    done = run_client(node, "info", "--model", str(path))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and message in done.stderr


def test_default_model_unrolls_like_python(node, initial, tmp_path):
    """No --model, no --init: the shipped ensemble and its starts, as Python's defaults."""
    out = tmp_path / "default.json"
    run_ok(node, "propagate", "--segments", str(SEGMENTS), "--dt-fs", str(DT_FS), "--out", str(out))
    model = load_model(device="cpu")
    expected = model.propagate(initial.positions, initial.velocities,
                               SEGMENTS * model.description.default_segment_fs, DT_FS)
    for t, ref in zip(_frames(out), expected, strict=True):
        _assert_same_frames(t, ref)
        _assert_same_choices(t, ref)


def test_small_energy_threshold_backtracks_like_python(node, members, initial, tmp_path):
    """A threshold at the median segment error of a default run: members get rejected,
    previous segments switch member, and segments are accepted over the threshold; Node
    makes every one of these choices as Python does."""
    length_fs = members.description.default_segment_fs
    default = members.propagate(initial.positions, initial.velocities, SEGMENTS * length_fs,
                                DT_FS)
    threshold = float(np.median([e for ref in default
                                 for e in ref.info["segment_energy_error_eV"]]))
    expected = _assert_unrolls_like_python(node, MEMBERS_DIR, members, initial,
                                           tmp_path / "strict.json", threshold)
    assert sum(ref.info["backtracks"] for ref in expected) > 0
    assert any(ref.info["segments_over_threshold"] for ref in expected)
    changed = [ref.info["segment_members"] != d.info["segment_members"]
               for ref, d in zip(expected, default)]
    assert any(changed)


@pytest.fixture(scope="module")
def analytic(tmp_path_factory):
    """Analytic member files (tests/onnx_fixtures.py) whose energy errors and failures are
    known; the poisoned ones predict NaN from a damaged start (test_robust_propagate.py)."""
    from tests.onnx_fixtures import write_model
    from tests.test_robust_propagate import _poisoned_model

    folder = tmp_path_factory.mktemp("analytic")
    specs = {
        "err30": {"energy_error_eV": 0.03}, "err10": {"energy_error_eV": 0.01},
        "err_neg20": {"energy_error_eV": -0.02}, "err100": {"energy_error_eV": 0.1},
        "cheap_damaging": {"energy_error_eV": 0.01, "damage": 1.0},
        "costly_clean": {"energy_error_eV": 0.03, "damage": 0.0},
        "nan": {"nan_after_fs": 5.0, "spare_load_check": True}, "free": {},
        "explode": {"growth": 1.0},
        "no_energy_a": {"has_energy": False},
        "no_energy_b": {"has_energy": False, "energy_error_eV": 1.0},
    }
    paths = {name: write_model(folder / f"{name}.onnx", **kw) for name, kw in specs.items()}
    paths["poison_cheap"] = _poisoned_model(folder / "poison_cheap.onnx", 0.01, 1.0)
    paths["poison_clean"] = _poisoned_model(folder / "poison_clean.onnx", 0.03, 0.0)
    return paths


@pytest.mark.parametrize("names, threshold_eV, members, backtracks, fails", [
    (("err30", "err10", "err_neg20"), None, [1, 1, 1, 1, 1], 0, False),
    (("cheap_damaging", "costly_clean"), 0.5, [1, 1, 1, 1, 0], 4, False),
    (("poison_cheap", "poison_clean"), None, [1, 1, 1, 1, 0], 4, False),
    (("poison_cheap", "poison_cheap"), None, [1], 1, True),
    (("err100", "err30"), 0.02, [1, 1, 1, 1, 1], 0, False),
    (("nan", "free"), None, [1, 1, 1, 1, 1], 0, False),
    (("nan", "explode"), None, [1, 1], 0, True),
    (("no_energy_b", "no_energy_a"), None, [0, 0, 0, 0, 0], 0, False),
], ids=["smallest-error", "backtrack", "backtrack-avoids-nan", "backtrack-then-stop",
        "over-threshold", "nan-member", "all-fail", "no-energy"])
def test_analytic_ensembles_choose_like_python(node, analytic, tmp_path, names, threshold_eV,
                                               members, backtracks, fails):
    """Member choice, backtracking (including a previous segment left switched when every
    attempt fails), acceptance over the threshold, failures and models without energy,
    against Python on folders of analytic members; the extended XYZ output carries the
    same choices in its first frame's gicnet_info."""
    from tests.test_robust_propagate import POSITIONS, TRANSLATIONS

    folder = tmp_path / "ensemble"
    folder.mkdir()
    for i, name in enumerate(names):
        shutil.copy(analytic[name], folder / f"m{i}_{name}.onnx")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"positions": POSITIONS.tolist(),
                                 "velocities": TRANSLATIONS.tolist()}))
    model = load_model(folder, device="cpu")
    kwargs = {} if threshold_eV is None else {"energy_threshold_eV": threshold_eV}
    args = [] if threshold_eV is None else ["--energy-threshold-eV", repr(threshold_eV)]
    # The Node client has the unrolling's mechanics, not the physical checks: compare
    # with Python's unrolling without them failing segments.
    expected = model.propagate(POSITIONS, TRANSLATIONS, 50.0, 1.0, unphysical="warn",
                               **kwargs)
    assert expected[0].info["segment_members"] == members
    assert expected[0].info["backtracks"] == backtracks
    assert ("failure" in expected[0].info) is fails
    for ext in ("json", "extxyz"):
        out = tmp_path / f"frames.{ext}"
        run_ok(node, "propagate", "--model", str(folder), "--init", str(state), "--segments",
               "5", "--dt-fs", "1", "--out", str(out), *args)
        if ext == "json":
            for t, ref in zip(_frames(out), expected, strict=True):
                _assert_same_frames(t, ref)
                _assert_same_choices(t, ref)
            continue
        for b, ref in enumerate(expected):
            got = read_trajectory(tmp_path / f"frames_{b:03d}.extxyz")
            np.testing.assert_allclose(got.positions, ref.positions, rtol=0, atol=POSITION_TOL_A)
            for key in ("segment_members", "backtracks", "segments_over_threshold", "failure",
                        "segment_fs", "energy_threshold_eV", "restore_energy"):
                assert got.info.get(key) == ref.info.get(key), key
            np.testing.assert_allclose(got.info.get("segment_energy_error_eV", []),
                                       ref.info.get("segment_energy_error_eV", []), rtol=0,
                                       atol=ENERGY_TOL_EV)


@pytest.mark.parametrize("ensemble", ["mean", "select"])
def test_ensemble_predict_matches_python(node, members, initial, tmp_path, ensemble):
    """One segment from an ensemble: the members' mean and spread, or the selected member."""
    out = tmp_path / "predict.json"
    run_ok(node, "predict", "--model", str(MEMBERS_DIR), "--init", str(INIT),
           "--times", PREDICT_TIMES_FS, "--ensemble", ensemble, "--out", str(out))
    times = [float(t) for t in PREDICT_TIMES_FS.split(",")]
    expected = members.predict(initial.positions, initial.velocities, times, ensemble=ensemble)
    frames = _frames(out)
    assert [t["member"] for t in frames] == expected.member.tolist()
    if ensemble == "select":
        assert len(set(expected.member.tolist())) > 1   # both members win somewhere
    for b, t in enumerate(frames):
        _assert_same_prediction(t, expected, b)
        if expected.spread_A is None:
            assert "spread_A" not in t
        else:
            np.testing.assert_allclose(t["spread_A"], expected.spread_A[b], rtol=0,
                                       atol=POSITION_TOL_A)


#: Metadata edits that make a member another model's: (description -> changed keys).
MIXED_UP = {
    "other-molecule": lambda d: {"atomic_numbers": list(d.atomic_numbers[:-1]) + [9]},
    "masses": lambda d: {"masses_amu": [m * (1 + 1e-5) for m in d.masses_amu]},
    "tc": lambda d: {"tc_fs": d.tc_fs / 2, "unroll_segment_fs": d.tc_fs / 2},
    "no-energy": lambda d: {"has_energy": False},
}


@pytest.mark.parametrize("kind", list(MIXED_UP))
def test_mixed_up_members_are_refused_in_one_line(node, tmp_path, kind):
    """A folder whose members disagree in atoms, masses (beyond 1e-6 relative), tc or energy
    output: one line on stderr, exit code 1, as Python refuses it."""

    changes = MIXED_UP[kind](load_model(MEMBER_FILES[1], device="cpu").description)
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(MEMBER_FILES[0], folder / "member_0.onnx")
    _with_metadata(MEMBER_FILES[1], folder / "member_1.onnx", **changes)
    # Python's load check sees the lie itself when the graph keeps an energy output.
    python_says = ("metadata says has_energy false" if kind == "no-energy"
                   else "differ in atoms, masses, tc or energy output")
    with pytest.raises(ModelError, match=python_says):
        load_model(folder, device="cpu")
    for command in (["info"], ["propagate", "--init", str(INIT), "--segments", "1",
                               "--dt-fs", "1"]):
        done = run_client(node, command[0], "--model", str(folder), *command[1:])
        assert done.returncode == 1
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
        assert ("ensemble members member_0.onnx and member_1.onnx differ in atoms, masses, tc "
                "or energy output") in done.stderr


def test_masses_within_the_tolerance_are_one_ensemble(node, tmp_path):
    folder = tmp_path / "close"
    folder.mkdir()
    source = load_model(MEMBER_FILES[1], device="cpu").description
    shutil.copy(MEMBER_FILES[0], folder / "member_0.onnx")
    _with_metadata(MEMBER_FILES[1], folder / "member_1.onnx",
                   masses_amu=[m * (1 + 1e-7) for m in source.masses_amu])
    assert load_model(folder, device="cpu").n_members == 2
    assert json.loads(run_ok(node, "info", "--model", str(folder)).stdout)["model_members"] == 2


@pytest.mark.parametrize("changes, message", [
    ({"format_version": 3}, "model format version 3 is newer than this client supports (2)"),
    ({"n_members": 0, "format_version": 2}, "n_members must be an integer >= 1"),
    ({"n_members": 2, "format_version": 1}, "an ensemble file (n_members) needs format_version"),
    ({"n_members": 2, "format_version": 2}, "output positions_t has shape"),
], ids=["newer-version", "zero-members", "ensemble-in-version-1", "no-member-axis"])
def test_bad_ensemble_metadata_is_refused_in_one_line(node, tmp_path, changes, message):
    """Versions above 2 are refused; n_members must be a positive integer of a version-2
    file, and an ensemble file's outputs must carry the member axis."""
    path = _with_metadata(MEMBER, tmp_path / "bad.onnx", **changes)
    done = run_client(node, "predict", "--model", str(path), "--init", str(INIT), "--times", "1")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr


def test_version_2_single_network_is_read(node, model, initial, tmp_path):
    """A single network may carry format version 2 (no n_members): outputs without the
    member axis."""
    path = _with_metadata(MEMBER, tmp_path / "v2.onnx", format_version=2)
    done = run_ok(node, "predict", "--model", str(path), "--init", str(INIT), "--times", "5")
    frames = json.loads(done.stdout)["trajectories"]
    expected = model.predict(initial.positions, initial.velocities, [5.0])
    np.testing.assert_allclose([t["positions"] for t in frames], expected.positions, rtol=0,
                               atol=POSITION_TOL_A)
