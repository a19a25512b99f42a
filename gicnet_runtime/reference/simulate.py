"""Reference molecular dynamics: Langevin equilibration, then velocity-Verlet NVE.

One trajectory (:func:`run_trajectory`):

1. Maxwell-Boltzmann velocities at ``temperature_K`` from ``numpy.random.default_rng(seed)``.
2. ``equilibration_fs`` of ASE ``Langevin`` dynamics with ``fixcm=False``.  ASE's
   default ``fixcm=True`` removes the centre-of-mass momentum after each noisy
   step while the friction-noise balance still assumes 3N free degrees of freedom,
   which overheats small molecules (ethanol/GFN2-xTB at a 300 K target averaged
   ~450 K).  With ``fixcm=False`` all 3N degrees of freedom are thermostatted, so
   the equilibration temperature is 2 E_kin / (3N k_B).
3. The centre-of-mass velocity is removed and, by default, the total angular
   momentum is zeroed (without rescaling the remaining velocities).  GICnet predicts
   internal motion; an overall rotation is not represented in internal coordinates,
   so removing it keeps the training targets consistent.  The removed energy is the
   translational and rotational share (about 3 k_B T); the internal degrees of
   freedom keep their canonical distribution.
4. ``duration_fs`` of ``VelocityVerlet`` NVE, a frame saved every ``save_every`` steps,
   with time starting at 0 fs at the start of NVE.

The NVE temperature is 2 E_kin / (n_dof k_B) with n_dof = 3N - 6 (3N - 5 for a linear
molecule) when the rotation is zeroed, else 3N - 3.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, one_line
from gicnet_runtime.reference.engines import single_threaded
from gicnet_runtime.units import KB_EV_PER_K, ase_velocities_to_a_per_fs

#: Langevin friction, 1/fs: velocity memory of 100 fs, several periods of the slowest
#: (torsional, ~100 cm^-1 ≈ 330 fs) modes of small molecules per 2 ps of equilibration.
DEFAULT_FRICTION_PER_FS = 0.01


@dataclasses.dataclass(frozen=True)
class SimulationSettings:
    """How to run one reference trajectory (seed excluded).

    Attributes:
        molecule: a name known to ``ase.build.molecule`` or a structure file ASE reads.
        engine: "gfn2", "gfn1" or "ani1x" (see :mod:`gicnet_runtime.reference.engines`).
        temperature_K: thermostat temperature, K.
        dt_fs: time step, fs (equilibration and NVE).
        duration_fs: NVE length, fs; a multiple of dt_fs * save_every.
        equilibration_fs: Langevin length before NVE, fs.
        friction_per_fs: Langevin friction, 1/fs.
        save_every: save every this many NVE steps.
        zero_angular_momentum: zero the total angular momentum before NVE.
    """

    molecule: str
    engine: str = "gfn2"
    temperature_K: float = 300.0
    dt_fs: float = 0.5
    duration_fs: float = 10000.0
    equilibration_fs: float = 2000.0
    friction_per_fs: float = DEFAULT_FRICTION_PER_FS
    save_every: int = 1
    zero_angular_momentum: bool = True

    def __post_init__(self) -> None:
        for name in ("temperature_K", "dt_fs", "duration_fs", "friction_per_fs"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.equilibration_fs >= 0:
            raise InputError(f"equilibration_fs must be >= 0, got {self.equilibration_fs}")
        if self.save_every < 1:
            raise InputError(f"save_every must be >= 1, got {self.save_every}")
        _whole_steps(self.duration_fs, self.dt_fs * self.save_every, "duration_fs")
        _whole_steps(self.equilibration_fs, self.dt_fs, "equilibration_fs")

    @property
    def n_nve_steps(self) -> int:
        return _whole_steps(self.duration_fs, self.dt_fs, "duration_fs")

    @property
    def n_equilibration_steps(self) -> int:
        return _whole_steps(self.equilibration_fs, self.dt_fs, "equilibration_fs")


def _whole_steps(length_fs: float, step_fs: float, name: str) -> int:
    n = round(length_fs / step_fs)
    if abs(n * step_fs - length_fs) > 1e-9 * max(length_fs, 1.0):
        raise InputError(f"{name}={length_fs} fs is not a multiple of {step_fs} fs")
    return n


def kinetic_temperature_K(kinetic_energy_eV, n_dof: int):
    """Instantaneous temperature, K, of ``kinetic_energy_eV`` (any shape, eV) over n_dof."""
    return 2.0 * np.asarray(kinetic_energy_eV) / (n_dof * KB_EV_PER_K)


def nve_degrees_of_freedom(n_atoms: int, linear: bool, zero_angular_momentum: bool) -> int:
    """Degrees of freedom left after removing translation (and rotation if zeroed)."""
    if not zero_angular_momentum:
        return 3 * n_atoms - 3
    return 3 * n_atoms - (5 if linear else 6)


def load_molecule(spec: str):
    """ase.Atoms from a structure file (first frame) or an ``ase.build.molecule`` name."""
    import ase.build
    import ase.collections
    import ase.io

    from gicnet_runtime.io.formats import READ_FAILURES

    if Path(spec).is_file():
        try:
            return ase.io.read(spec, index=0)
        except READ_FAILURES as err:
            raise InputError(f"cannot read molecule file {spec}: {one_line(err)}"
                             ) from None
    if spec in ase.collections.g2.names:
        return ase.build.molecule(spec)
    raise InputError(f"{spec!r} is neither a file nor a molecule name known to "
                     "ase.build.molecule (e.g. CH3CH2OH, H2O)")


def is_linear(atoms, tolerance_amu_A2: float = 1e-6) -> bool:
    """Whether the molecule's smallest principal moment of inertia vanishes."""
    return len(atoms) < 3 or float(np.min(atoms.get_moments_of_inertia())) < tolerance_amu_A2


def provenance(settings: SimulationSettings, seed: int) -> dict:
    """The JSON-serialisable record stored with every trajectory."""
    from importlib import metadata

    import ase

    from gicnet_runtime.reference.engines import get_engine

    try:
        gicnet_version = metadata.version("gicnet")
    except metadata.PackageNotFoundError:
        gicnet_version = "unknown"
    return {
        **dataclasses.asdict(settings),
        "seed": int(seed),
        "engine_version": get_engine(settings.engine).version(),
        "thermostat": "ase.md.langevin.Langevin(fixcm=False)",
        "integrator": "ase.md.verlet.VelocityVerlet",
        "ase_version": ase.__version__,
        "gicnet_version": gicnet_version,
    }


def run_trajectory(settings: SimulationSettings, seed: int) -> Trajectory:
    """Equilibrate and run one NVE trajectory.

    Bitwise reproducible for a given ``seed`` when the engine runs on one thread, as in
    the worker processes of :func:`run_trajectories`.

    Returns the NVE part: time_fs (T,) fs from 0, positions (T, N, 3) Å, velocities
    (T, N, 3) Å/fs, energies (T,) eV, with T = duration / (dt * save_every) + 1.
    ``info`` holds :func:`provenance` plus the measured temperatures (K).
    """
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution,
        Stationary,
        ZeroRotation,
    )

    from gicnet_runtime.reference.engines import check_elements, get_engine, make_calculator

    atoms = load_molecule(settings.molecule)
    check_elements(get_engine(settings.engine), atoms.numbers)
    info = provenance(settings, seed)
    atoms.calc = make_calculator(settings.engine)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=settings.temperature_K, rng=rng)
    equilibration_ke = equilibrate(atoms, settings, rng)
    n_eq = len(equilibration_ke)
    Stationary(atoms, preserve_temperature=False)
    if settings.zero_angular_momentum:
        ZeroRotation(atoms, preserve_temperature=False)
    traj = run_nve(atoms, settings, info)
    n_dof = nve_degrees_of_freedom(len(atoms), is_linear(atoms), settings.zero_angular_momentum)
    # the second half only: the first relaxes from the start geometry's zero potential energy
    equilibrated_t = kinetic_temperature_K(equilibration_ke[n_eq // 2:], 3 * len(atoms))
    traj.info.update(
        equilibration_temperature_K=float(np.mean(equilibrated_t)) if n_eq else None,
        nve_degrees_of_freedom=n_dof,
        nve_temperature_K=float(np.mean(kinetic_temperature_K(traj.kinetic_energy, n_dof))),
    )
    return traj


def equilibrate(atoms, settings: SimulationSettings, rng) -> np.ndarray:
    """Run ``settings.n_equilibration_steps`` of Langevin dynamics (fixcm=False) on ``atoms``
    (with a calculator and velocities) in place; return (n_steps,) kinetic energy, eV,
    after each step.  ``rng`` is a numpy Generator."""
    from ase import units
    from ase.md.langevin import Langevin

    n_steps = settings.n_equilibration_steps
    if n_steps == 0:
        return np.empty(0)
    kinetic = []
    dyn = Langevin(atoms, timestep=settings.dt_fs * units.fs,
                   temperature_K=settings.temperature_K,
                   friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
    dyn.attach(lambda: kinetic.append(atoms.get_kinetic_energy()), interval=1)
    dyn.run(n_steps)
    return np.array(kinetic[1:])  # the observer also runs once before the first step


def run_nve(atoms, settings: SimulationSettings, info: dict) -> Trajectory:
    """Run ``settings.n_nve_steps`` of velocity Verlet on ``atoms`` (with a calculator and
    velocities) in place, saving every ``settings.save_every`` steps from step 0.

    Returns the frames as a Trajectory (time from 0 fs, units as in the module docstring)
    carrying ``info``.
    """
    from ase import units
    from ase.md.verlet import VelocityVerlet

    n_frames = settings.n_nve_steps // settings.save_every + 1
    n_atoms = len(atoms)
    positions = np.empty((n_frames, n_atoms, 3))
    velocities = np.empty((n_frames, n_atoms, 3))
    potential = np.empty(n_frames)
    kinetic = np.empty(n_frames)
    frame = [0]

    def record() -> None:
        i = frame[0]
        positions[i] = atoms.get_positions()
        velocities[i] = ase_velocities_to_a_per_fs(atoms.get_velocities())
        potential[i] = atoms.get_potential_energy()
        kinetic[i] = atoms.get_kinetic_energy()
        frame[0] += 1

    dyn = VelocityVerlet(atoms, timestep=settings.dt_fs * units.fs)
    dyn.attach(record, interval=settings.save_every)
    dyn.run(settings.n_nve_steps)
    if frame[0] != n_frames:
        raise RuntimeError(f"recorded {frame[0]} frames, expected {n_frames}")
    time_fs = np.arange(n_frames) * settings.dt_fs * settings.save_every
    return Trajectory(time_fs, positions, velocities, atoms.numbers, atoms.get_masses(),
                      potential, kinetic, info)


def run_trajectories(
    settings: SimulationSettings,
    seeds: list[int],
    workers: int = 2,
    progress: bool = True,
) -> list[Trajectory]:
    """:func:`run_trajectory` for each seed, in ``workers`` processes; results in seed order.

    The worker processes are spawned, so a calling script needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    validate(settings)
    return _parallel_map(_run_one, [(settings, s) for s in seeds], workers, progress)


def simulate_to_files(
    settings: SimulationSettings,
    seeds: list[int],
    out_dir: str | Path,
    fmt: str = "h5md",
    workers: int = 2,
    progress: bool = True,
) -> list[Path]:
    """Run one trajectory per seed and write each to ``out_dir/<molecule>_seed<seed>.<ext>``.

    Files that already exist are kept and not recomputed (writes are atomic, so an
    existing file is complete); this lets an interrupted run resume.
    """
    validate(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / trajectory_file_name(settings.molecule, seed, fmt) for seed in seeds]
    todo = [(settings, seed, str(path), fmt) for seed, path in zip(seeds, paths)
            if not path.exists()]
    _parallel_map(_run_and_write, todo, workers, progress)
    return paths


def validate(settings: SimulationSettings) -> None:
    """Fail early, in the calling process, on a bad molecule, engine or element set."""
    from gicnet_runtime.reference.engines import check_elements, get_engine

    engine = get_engine(settings.engine)
    engine.version()
    check_elements(engine, load_molecule(settings.molecule).numbers)


def trajectory_file_name(molecule: str, seed: int, fmt: str) -> str:
    """'<molecule stem>_seed<seed>.<ext>' for format ``fmt``."""
    extensions = {"h5md": "h5", "extxyz": "xyz", "traj": "traj", "npz": "npz"}
    if fmt not in extensions:
        raise InputError(f"unknown trajectory format {fmt!r}; choose one of {list(extensions)}")
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(molecule).stem)
    return f"{stem}_seed{int(seed)}.{extensions[fmt]}"


def _run_one(args) -> Trajectory:
    return run_trajectory(*args)


def _run_and_write(args) -> str:
    from gicnet_runtime.io.formats import write_trajectory

    settings, seed, path, fmt = args
    write_trajectory(run_trajectory(settings, seed), path, fmt)
    return path


def _parallel_map(fn, items: list, workers: int, progress: bool) -> list:
    """``[fn(x) for x in items]`` over ``workers`` spawned processes, with a progress bar.

    Always in worker processes, even for one worker: each runs its engine on one thread,
    which makes trajectories bitwise reproducible (multithreaded reductions in tblite
    differ in the last bit from run to run, and MD amplifies that chaotically).
    """
    import concurrent.futures
    import multiprocessing

    from gicnet_runtime.progress import progress as progress_reporter

    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    bar = progress_reporter(len(items), "trajectories", "trajectory", enabled=progress)
    results: list = [None] * len(items)
    if not items:
        return results
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(
        min(workers, len(items)), mp_context=context, initializer=single_threaded)
    try:
        with bar:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    finally:  # on an error, drop the queued trajectories instead of running them all
        pool.shutdown(wait=True, cancel_futures=True)
    return results
