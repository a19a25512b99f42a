"""ASE integration against ASE itself: units, Atoms <-> Trajectory, Model given Atoms, and
GicnetDynamics with the shipped ethanol model (frames, observers, .traj, MD log)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.constraints import FixAtoms

from gicnet_runtime import load_model, read_trajectory
from gicnet_runtime.core import shipped_model
from gicnet_runtime.core.mechanics import kinetic_energy_eV
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.integrations import (
    GicnetDynamics,
    atoms_to_state,
    trajectory_to_atoms,
)
from gicnet_runtime.units import ASE_TIME_UNIT_IN_FS

ROOT = Path(__file__).resolve().parent.parent
DT_FS = 0.5
STEPS = 400  # 200 fs of ethanol
#: Positions and velocities of frames compared across code paths: the frames are float32.
FRAME_ATOL = 1e-6
#: Velocities pass through ASE's momenta (m·v, then /m): a few ulp.
ULP_RTOL = 1e-14


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")


@pytest.fixture
def atoms():
    """The shipped model's initial condition, as ASE reads it (velocities from momenta)."""
    return ase.io.read(shipped_model() / "initial.extxyz")


def _ethanol_trajectory(n_frames=5) -> Trajectory:
    base = molecule("CH3CH2OH")
    rng = np.random.default_rng(1)
    velocities = 0.01 * rng.standard_normal((n_frames, len(base), 3))
    masses = base.get_masses()
    return Trajectory(time_fs=0.25 + 0.5 * np.arange(n_frames),
                      positions=base.positions + 0.02 * rng.standard_normal(velocities.shape),
                      velocities=velocities, atomic_numbers=base.numbers, masses=masses,
                      potential_energy=-309.0 + rng.random(n_frames),
                      kinetic_energy=kinetic_energy_eV(velocities, masses))


def test_velocity_unit_is_ase_time_unit():
    """1 fs is ase.units.fs ASE time units; a velocity of v Å/fs is v / units.fs in ASE."""
    assert ASE_TIME_UNIT_IN_FS * units.fs == pytest.approx(1.0, rel=1e-14)
    a = molecule("H2O")
    v_a_per_fs = np.array([[0.01, 0.0, 0.0], [0.0, -0.02, 0.0], [0.0, 0.0, 0.03]])
    a.set_velocities(v_a_per_fs / units.fs)
    pos, vel = atoms_to_state(a)
    assert pos.shape == vel.shape == (3, 3)
    np.testing.assert_allclose(vel, a.get_velocities() * units.fs, rtol=ULP_RTOL)
    np.testing.assert_allclose(vel, v_a_per_fs, rtol=ULP_RTOL, atol=1e-18)
    # Kinetic energy in gicnet units (amu, Å/fs -> eV) equals ASE's.
    assert kinetic_energy_eV(vel, a.get_masses()) == pytest.approx(a.get_kinetic_energy(),
                                                                  rel=1e-12)
    # A list gives a batch axis.
    pos2, vel2 = atoms_to_state([a, a])
    assert pos2.shape == vel2.shape == (2, 3, 3)
    np.testing.assert_array_equal(vel2[1], vel)


def test_trajectory_to_atoms_round_trip():
    traj = _ethanol_trajectory()
    frames = traj.to_atoms()
    assert len(frames) == traj.n_frames
    for i, a in enumerate(frames):
        np.testing.assert_array_equal(a.get_positions(), traj.positions[i])
        np.testing.assert_allclose(a.get_velocities() * units.fs, traj.velocities[i],
                                   rtol=ULP_RTOL)
        np.testing.assert_array_equal(a.get_masses(), traj.masses)
        assert a.info["time_fs"] == traj.time_fs[i]
        assert a.get_potential_energy() == traj.potential_energy[i]
        assert a.get_kinetic_energy() == pytest.approx(traj.kinetic_energy[i], rel=1e-12)
    pos, vel = atoms_to_state(trajectory_to_atoms(traj))
    np.testing.assert_array_equal(pos, traj.positions)
    np.testing.assert_allclose(vel, traj.velocities, rtol=ULP_RTOL)


def test_trajectory_write_delegates_to_the_writers(tmp_path):
    traj = _ethanol_trajectory()
    path = traj.write(tmp_path / "t.extxyz")
    assert path == tmp_path / "t.extxyz"
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.positions, traj.positions)
    np.testing.assert_array_equal(back.potential_energy, traj.potential_energy)


def test_atoms_check_against_the_model(model, atoms):
    pos, vel = atoms_to_state(atoms, model.description)
    np.testing.assert_array_equal(pos, atoms.get_positions())
    swapped = atoms[[2, 0, 1, *range(3, len(atoms))]]
    for call in (lambda: atoms_to_state(swapped, model.description),
                 lambda: model.predict(swapped, times_fs=[1.0]),
                 lambda: GicnetDynamics(swapped, model, DT_FS * units.fs)):
        with pytest.raises(InputError, match="atom order") as err:
            call()
        assert "\n" not in str(err.value)
    heavy = atoms.copy()
    heavy.set_masses([*heavy.get_masses()[:-1], 2.014])  # a deuterium
    with pytest.raises(InputError, match="mass"):
        model.propagate(heavy, duration_fs=10.0, dt_fs=DT_FS)
    with pytest.raises(InputError, match="different atoms"):
        atoms_to_state([atoms, molecule("H2O")])


def test_model_accepts_atoms(model, atoms):
    pos, vel = atoms_to_state(atoms)
    times = [0.0, 2.5, 10.0]
    from_atoms = model.predict(atoms, times_fs=times)
    from_arrays = model.predict(pos, vel, times)
    assert from_atoms.positions.shape == (3, len(atoms), 3)  # one Atoms: no B axis
    np.testing.assert_array_equal(from_atoms.positions, from_arrays.positions)
    batch = model.predict([atoms, atoms], times_fs=times, ensemble="select")
    assert batch.positions.shape == (2, 3, len(atoms), 3)
    (traj,) = model.propagate(atoms, duration_fs=20.0, dt_fs=DT_FS)
    (ref,) = model.propagate(pos, vel, 20.0, DT_FS)  # the positional form still works
    np.testing.assert_array_equal(traj.positions, ref.positions)
    with pytest.raises(InputError, match="velocities come from the Atoms"):
        model.propagate(atoms, vel, 20.0, DT_FS)
    with pytest.raises(InputError, match="velocities are needed"):
        model.predict(pos, times_fs=times)
    with pytest.raises(InputError, match="times_fs"):
        model.predict(atoms)


def _recorder(dyn, atoms, log):
    def record():
        log.append((dyn.nsteps, atoms.info["time_fs"], dyn.get_time() / units.fs,
                    atoms.get_positions(), atoms.get_velocities() * units.fs,
                    atoms.get_potential_energy()))
    return record


@pytest.mark.parametrize("options", [{}, {"restore_energy": False, "segment_fs": 5.0}])
def test_dynamics_frames_are_propagates(model, atoms, options):
    (traj,) = model.propagate(atoms, duration_fs=STEPS * DT_FS, dt_fs=DT_FS, **options)
    dyn = GicnetDynamics(atoms, model, timestep=DT_FS * units.fs, **options)
    seen = []
    dyn.attach(_recorder(dyn, atoms, seen), interval=1)
    assert dyn.run(STEPS)
    assert [s[0] for s in seen] == list(range(STEPS + 1))
    np.testing.assert_allclose(np.stack([s[3] for s in seen]), traj.positions,
                               rtol=0, atol=FRAME_ATOL)
    np.testing.assert_allclose(np.stack([s[4] for s in seen]), traj.velocities,
                               rtol=0, atol=FRAME_ATOL)
    np.testing.assert_allclose([s[5] for s in seen], traj.potential_energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose([s[1] for s in seen], traj.time_fs, rtol=1e-12, atol=1e-12)
    assert atoms.get_kinetic_energy() == pytest.approx(traj.kinetic_energy[-1], rel=1e-6)


def test_observers_traj_file_and_log(model, atoms, tmp_path):
    """ASE calls observers at step 0, then every interval; the writer and the logger are
    observers at loginterval."""
    steps, loginterval = 40, 4
    (traj,) = model.propagate(atoms, duration_fs=steps * DT_FS, dt_fs=DT_FS)
    dyn = GicnetDynamics(atoms, model, DT_FS * units.fs, trajectory=tmp_path / "md.traj",
                         logfile=tmp_path / "md.log", loginterval=loginterval)
    seen = []
    dyn.attach(_recorder(dyn, atoms, seen), interval=2)
    dyn.run(steps)
    assert [s[0] for s in seen] == list(range(0, steps + 1, 2))
    np.testing.assert_allclose([s[2] for s in seen], np.arange(0, steps + 1, 2) * DT_FS,
                               rtol=1e-12)
    logged = np.arange(0, steps + 1, loginterval)
    written = ase.io.read(tmp_path / "md.traj", index=":")
    assert len(written) == logged.size
    for k, a in zip(logged, written):
        np.testing.assert_allclose(a.get_positions(), traj.positions[k], atol=FRAME_ATOL)
        np.testing.assert_allclose(a.get_velocities() * units.fs, traj.velocities[k],
                                   atol=FRAME_ATOL)
        assert a.get_potential_energy() == pytest.approx(traj.potential_energy[k], abs=1e-9)
        assert a.info["time_fs"] == pytest.approx(k * DT_FS, rel=1e-12)
    lines = (tmp_path / "md.log").read_text().splitlines()
    assert lines[0].split()[:3] == ["Time[ps]", "Etot[eV]", "Epot[eV]"]
    table = np.array([[float(x) for x in line.split()] for line in lines[1:]])
    np.testing.assert_allclose(table[:, 0], logged * DT_FS / 1000, atol=1e-4)
    np.testing.assert_allclose(table[:, 2], traj.potential_energy[logged], atol=1e-4)
    np.testing.assert_allclose(table[:, 3], traj.kinetic_energy[logged], atol=1e-4)
    back = read_trajectory(tmp_path / "md.traj")  # gicnet reads it, times included
    np.testing.assert_allclose(back.time_fs, logged * DT_FS, rtol=1e-12)


def test_second_run_continues_from_the_atoms(model, atoms):
    first, second = 20, 30
    dyn = GicnetDynamics(atoms, model, DT_FS * units.fs)
    seen = []
    dyn.attach(_recorder(dyn, atoms, seen), interval=1)
    dyn.run(first)
    (traj,) = model.propagate(atoms, duration_fs=second * DT_FS, dt_fs=DT_FS)
    dyn.run(second)
    assert [s[0] for s in seen] == list(range(first + second + 1))  # step 20 seen once
    np.testing.assert_allclose(np.stack([s[3] for s in seen[first:]]), traj.positions,
                               atol=FRAME_ATOL)
    np.testing.assert_allclose(seen[-1][1], (first + second) * DT_FS, rtol=1e-12)


def test_energy_but_no_forces(model, atoms):
    GicnetDynamics(atoms, model, DT_FS * units.fs)
    with pytest.raises(PropertyNotImplementedError, match="not forces"):
        atoms.get_forces()
    atoms.positions[0] += 0.01  # off the frames: the model's energy at t = 0 of the state
    expected = model.predict(atoms, times_fs=[0.0]).potential_energy[0]
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-9)


def test_dynamics_input_errors(model, atoms):
    fixed = atoms.copy()
    fixed.set_constraint(FixAtoms(indices=[0]))
    with pytest.raises(InputError, match="constraints"):
        GicnetDynamics(fixed, model, DT_FS * units.fs)
    with pytest.raises(InputError, match="timestep"):
        GicnetDynamics(atoms, model, -1.0)
    with pytest.raises(InputError, match="run"):
        GicnetDynamics(atoms, model, DT_FS * units.fs).step()


def test_failed_trajectory_stops_at_its_last_frame(model, atoms, monkeypatch):
    """A trajectory that fails numerically (every member NaN from the second segment on)
    raises ModelError at the first step without a frame, after the observers saw every
    good one: the initial state and the first 10 fs segment, 21 frames."""
    run = model.run
    calls = []
    # the potential at t = 0, then segment 0 (its time-reversal correction's two calls and
    # the prediction itself, or the prediction alone) are fine
    good = 1 + (3 if model.description.reversal_share > 0 else 1)

    def nan_after_segment_0(*args, **kwargs):
        out = run(*args, **kwargs)
        calls.append(1)
        if len(calls) > good:
            out = {k: np.full_like(v, np.nan) for k, v in out.items()}
        return out

    monkeypatch.setattr(model, "run", nan_after_segment_0)
    dyn = GicnetDynamics(atoms, model, DT_FS * units.fs)
    seen = []
    dyn.attach(_recorder(dyn, atoms, seen), interval=1)
    with pytest.raises(ModelError, match="stops at t = 10 fs: trajectory 0: non-finite"):
        dyn.run(40)
    assert [s[0] for s in seen] == list(range(21))


def test_plain_arrays_import_no_ase():
    """ASE is optional: the package's lazy names, arrays in and files out never import it."""
    code = (
        "import sys\n"
        "import gicnet_runtime.integrations, gicnet_runtime.core.trajectory\n"
        "from gicnet_runtime import load_model\n"
        "m = load_model(device='cpu')\n"
        "import numpy as np\n"
        "pos = np.array(" + repr(ase.io.read(shipped_model() / "initial.extxyz")
                             .get_positions().tolist()) + ")\n"
        "traj = m.propagate(pos, np.zeros_like(pos), 5.0, 0.5)[0]\n"
        "m.predict(pos, np.zeros_like(pos), [1.0])\n"
        "assert 'ase' not in sys.modules, 'ase imported'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_docs_snippet_runs(tmp_path, monkeypatch):
    """docs/ase.md's python block, run as it stands."""
    text = (ROOT / "docs" / "ase.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "docs/ase.md", "exec"), {"__name__": "docs_ase"})
    assert len(ase.io.read("md.traj", index=":")) == 200 // 10 + 1
    assert read_trajectory("ethanol.extxyz").n_frames == 201
    assert len(Path("md.log").read_text().splitlines()) == 1 + 200 // 10 + 1
