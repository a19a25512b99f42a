"""Numerical failure and interruption of `gicnet propagate`.

* A prediction that turns NaN is caught within its segment: an ensemble steps back to a
  member that avoids it; a single model stops the trajectory, says which one and when,
  and never writes the bad frames.
* A run killed at any moment leaves no output file, only its checkpoint, and
  ``--resume`` ends with exactly the trajectories of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from gicnet_runtime.core.model import load_model
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError
from gicnet_runtime.io.formats import read_trajectory, write_trajectory
from gicnet_runtime.units import AMU_A2_PER_FS2_IN_EV
from gicnet_runtime.unroll.checkpoint import PropagateCheckpoint, checkpoint_path, load_state
from tests.onnx_fixtures import (
    ETHANOL_MASSES_AMU,
    ETHANOL_POSITIONS_A,
    ETHANOL_Z,
    _Graph,
    _marker,
    _save,
    description,
    write_model,
)

REPO = Path(__file__).resolve().parent.parent
#: Pure translations keep the fixtures' hidden marker (a z distance) unchanged.
TRANSLATIONS = np.stack([np.tile(v, (9, 1)) for v in ([0.01, 0.002, 0.0], [0.005, 0.001, 0.0],
                                                      [-0.01, -0.002, 0.0])])
POSITIONS = np.stack([ETHANOL_POSITIONS_A] * 3)


def _poisoned_model(path: Path, energy_error_eV: float, damage: float) -> Path:
    """Free flight with the fixtures' hidden marker; every output is NaN after t = 1 fs when
    the segment starts from a damaged state (marker > 0.5): a state-dependent failure."""
    g = _Graph()
    x = g.op("Unsqueeze", "positions", g.const([1]))
    v = g.op("Unsqueeze", "velocities", g.const([1]))
    t = g.op("Unsqueeze", "times", g.const([2, 3]))
    tau = g.op("Div", t, g.const(10.0))
    pos = g.op("Add", x, g.op("Mul", v, t))
    error = g.op("Mul", tau, g.const(energy_error_eV))
    pos, error = _marker(g, x, tau, pos, error, damage)
    # h_in, recomputed: NaN = sqrt(negative) where h_in > 0.5 and t > 1 fs.
    z1 = g.op("Slice", x, g.const([1, 2]), g.const([2, 3]), g.const([2, 3]))
    z0 = g.op("Slice", x, g.const([0, 2]), g.const([1, 3]), g.const([2, 3]))
    ref = ETHANOL_POSITIONS_A[1, 2] - ETHANOL_POSITIONS_A[0, 2]
    h_in = g.op("Div", g.op("Sub", g.op("Sub", z1, z0), g.const(ref)), g.const(0.01))
    gate = g.op("Mul", g.op("Sub", g.const(0.5), h_in), g.op("Sub", t, g.const(1.0)))
    poison = g.op("Mul", g.op("Sqrt", g.op("Add", gate, g.const(1.0))), g.const(0.0))
    pos, vel = g.op("Add", pos, poison), g.op("Add", v, poison)
    g.op("Identity", pos, out="positions_t")
    g.op("Identity", vel, out="velocities_t")
    half_m = g.const(0.5 * np.asarray(ETHANOL_MASSES_AMU)[:, None] * AMU_A2_PER_FS2_IN_EV)
    kinetic = g.op("ReduceSum", g.op("Mul", g.op("Mul", vel, vel), half_m), g.const([2, 3]),
                   keepdims=0)
    g.op("Add", g.op("Sub", g.const(-10.0), kinetic), g.op("Squeeze", error, g.const([2, 3])),
         out="energy_t")
    return _save(g, path, ["positions_t", "velocities_t", "energy_t"], description())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust_propagate")
    init = d / "init.extxyz"
    write_trajectory(Trajectory(time_fs=[0.0, 1.0, 2.0], positions=POSITIONS,
                                velocities=TRANSLATIONS, atomic_numbers=ETHANOL_Z,
                                masses=ETHANOL_MASSES_AMU), init)
    return {"dir": d, "init": init,
            "poison_cheap": _poisoned_model(d / "poison_cheap.onnx", 0.01, 1.0),
            "poison_clean": _poisoned_model(d / "poison_clean.onnx", 0.03, 0.0),
            "cheap": write_model(d / "cheap.onnx", energy_error_eV=0.01, damage=1.0),
            "clean": write_model(d / "clean.onnx", energy_error_eV=0.03, damage=0.0),
            "nan": write_model(d / "nan.onnx", nan_after_fs=5.0, spare_load_check=True),
            "free": write_model(d / "free.onnx")}


def test_backtracking_steps_around_a_state_that_makes_every_member_fail(models):
    # poison_cheap wins each segment on energy but leaves a state from which both members
    # predict NaN; stepping back to poison_clean avoids it, so nothing fails.
    model = load_model([models["poison_cheap"], models["poison_clean"]], device="cpu")
    traj = model.propagate(ETHANOL_POSITIONS_A, TRANSLATIONS[0], 50.0, 1.0)[0]
    assert "failure" not in traj.info and traj.n_frames == 51
    assert traj.info["segment_members"] == [1, 1, 1, 1, 0]
    assert traj.info["backtracks"] == 4
    assert np.all(np.isfinite(traj.positions)) and np.all(np.isfinite(traj.potential_energy))


def test_a_single_member_stops_and_reports_which_trajectory_and_when(models):
    model = load_model(models["poison_cheap"], device="cpu")
    trajs = model.propagate(POSITIONS[:2], TRANSLATIONS[:2], 50.0, 1.0)
    for b, traj in enumerate(trajs):
        assert traj.time_fs[-1] == pytest.approx(10.0) and np.all(np.isfinite(traj.positions))
        assert traj.info["failure"] == (f"trajectory {b}: non-finite prediction between "
                                        "t = 10 and 20 fs")


def test_cli_writes_only_the_finite_frames_and_says_why(models, tmp_path):
    out = tmp_path / "run.extxyz"
    result = CliRunner().invoke(cli.main, [
        "propagate", "--model", str(models["nan"]), "--init", str(models["init"]),
        "--duration-fs", "40", "--dt-fs", "0.5", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [f"gicnet: warning: trajectory {b}: non-finite prediction between "
                        "t = 0 and 10 fs" for b in range(3)]
    for b in range(3):
        traj = read_trajectory(tmp_path / f"run_{b:03d}.extxyz")
        assert traj.n_frames == 1 and np.all(np.isfinite(traj.positions))
    assert not checkpoint_path(out).exists()


class _Killed(Exception):
    """Stands in for SIGKILL right after a checkpoint was written."""


class _KilledAfter(PropagateCheckpoint):
    def __init__(self, path, saves: int) -> None:
        super().__init__(path, every_s=0.0)
        self.saves = saves

    def __call__(self, state, sink) -> None:
        super().__call__(state, sink)
        self.saves -= 1
        if self.saves == 0:
            raise _Killed


def _assert_same(a: list[Trajectory], b: list[Trajectory]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("time_fs", "positions", "velocities", "potential_energy",
                     "kinetic_energy"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
        assert x.info == y.info


@pytest.mark.parametrize("names, saves", [
    (("cheap", "clean"), 1), (("cheap", "clean"), 4), (("cheap", "clean"), 7),
    (("nan", "free"), 3), (("poison_cheap",), 2),
])
def test_resumed_run_equals_an_uninterrupted_one(models, tmp_path, names, saves):
    # Backtracking ensembles are interrupted with a segment still open to change.
    model = load_model([models[n] for n in names], device="cpu")
    args = (POSITIONS, TRANSLATIONS, 80.0, 0.7)
    kw = {"energy_threshold_eV": 0.5, "restore_energy": True}
    reference = model.propagate(*args, **kw)
    path = tmp_path / "run.h5.resume.npz"
    with pytest.raises(_Killed):
        model.propagate(*args, **kw, checkpoint=_KilledAfter(path, saves))
    saved = load_state(path, _key(model, args, kw))
    assert 0 < saved.segment.sum() < 3 * 8 or any(saved.failure)
    counts = []
    resumed = model.propagate(*args, **kw, checkpoint=PropagateCheckpoint(path, resume=True),
                              progress=counts.append)
    _assert_same(resumed, reference)
    assert counts[0] == saved.segment.sum()


def _key(model, args, kw) -> str:
    from gicnet_runtime.unroll.checkpoint import fingerprint

    pos, vel, duration, dt = args
    return fingerprint(model.paths, pos, vel, duration, dt, kw["energy_threshold_eV"],
                       kw["restore_energy"], model.description.default_segment_fs)


def test_checkpoint_holds_no_pickle_and_is_replaced_atomically(models, tmp_path):
    model = load_model([models["cheap"], models["clean"]], device="cpu")
    path = tmp_path / "x.resume.npz"
    model.propagate(POSITIONS, TRANSLATIONS, 30.0, 1.0, energy_threshold_eV=0.5,
                    checkpoint=PropagateCheckpoint(path, every_s=0.0))
    with np.load(path, allow_pickle=False) as data:  # raises on any object array
        header = json.loads(str(data["header"]))
        assert all(data[k].dtype != object for k in data.files)
    assert header["version"] == 3 and len(header["failure"]) == 3
    assert sorted(os.listdir(tmp_path)) == ["x.resume.npz"]  # no temporary files left


def test_sigkill_leaves_no_output_and_resume_finishes_identically(models, tmp_path):
    out = tmp_path / "run.h5"
    cmd = [sys.executable, str(REPO / "cli.py"), "propagate", "--model", str(models["cheap"]),
           "--model", str(models["clean"]), "--init", str(models["init"]), "--duration-fs",
           "800", "--dt-fs", "1", "--energy-threshold-eV", "0.5", "--out", str(out),
           "--device", "cpu", "--threads", "1", "--checkpoint-every-s", "0"]
    env = dict(os.environ, TQDM_DISABLE="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ckpt = checkpoint_path(out)
    model = load_model([models["cheap"], models["clean"]], device="cpu", threads=1)
    key = _key(model, (POSITIONS, TRANSLATIONS, 800.0, 1.0), {"energy_threshold_eV": 0.5,
                                                                   "restore_energy": True})
    deadline = time.monotonic() + 60
    done = 0
    while done < 15 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if ckpt.exists():
            done = load_state(ckpt, key).segment.sum()
    assert proc.poll() is None, "propagate finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # No output; besides the checkpoint and the frame spool at most the hidden temporary
    # copy of a checkpoint that was being written when the kill came (removed when the run
    # completes).
    left = sorted(p.name for p in tmp_path.iterdir())
    spool = out.with_name(out.name + ".resume.frames")
    assert ckpt.name in left and spool.name in left
    # The killed run's output locks stay too: their process is gone, so the resumed run
    # takes them over.
    assert all(n in (ckpt.name, spool.name)
               or (n.startswith(f".{ckpt.name}.") and n.endswith(".tmp"))
               or (n.startswith(".run_") and n.endswith(".h5.lock")) for n in left), left
    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert not ckpt.exists() and not spool.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lock"))]
    reference = model.propagate(POSITIONS, TRANSLATIONS, 800.0, 1.0, energy_threshold_eV=0.5)
    written = [read_trajectory(tmp_path / f"run_{b:03d}.h5") for b in range(3)]
    _assert_same(written, reference)


@pytest.mark.parametrize("edit", ["segment", "member", "header"])
def test_a_tampered_checkpoint_is_refused_in_one_line(models, tmp_path, edit):
    """An edited checkpoint (progress arrays or header changed consistently, as a truncating
    edit would) is refused on --resume, not continued into a short trajectory."""
    model = load_model([models["cheap"], models["clean"]], device="cpu")
    path = tmp_path / "x.resume.npz"
    model.propagate(POSITIONS, TRANSLATIONS, 30.0, 1.0, energy_threshold_eV=0.5,
                    checkpoint=PropagateCheckpoint(path, every_s=0.0))
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    if edit == "header":
        header = json.loads(str(arrays["header"]))
        header["failure"] = ["edited"] * len(header["failure"])
        arrays["header"] = np.array(json.dumps(header))
    else:
        arrays[edit] = arrays[edit] + 1
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="changed after it was written"):
        load_state(path, _key(model, (POSITIONS, TRANSLATIONS, 30.0, 1.0),
                              {"energy_threshold_eV": 0.5, "restore_energy": True}))
