"""ASE integration: Atoms in, Atoms out, and a ``MolecularDynamics`` driven by a model.

- :func:`atoms_to_state`: positions (Å) and velocities (Å/fs) of one Atoms or a list;
- :func:`trajectory_to_atoms`: one Atoms per frame of a :class:`Trajectory`;
- :class:`GicnetCalculator`: the model's potential energy, and no forces;
- :class:`GicnetDynamics`: swaps in for ``VelocityVerlet`` in an ASE script: same
  timestep (ASE time units), ``trajectory=``, ``logfile=``, ``attach(fn, interval)``.

ASE keeps velocities in Å per ASE time unit (``ase.units.fs`` of them make 1 fs); they
are converted with :mod:`gicnet_runtime.units` here and nowhere else.

This module subclasses ASE's ``Calculator`` and ``MolecularDynamics``, so importing it
imports ASE (the ``io`` extra; an :class:`InputError` says so when it is missing).
The rest of gicnet imports it only when it is used: the lazy names of
:mod:`gicnet_runtime.integrations`, :class:`Model` given Atoms, ``Trajectory.to_atoms``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gicnet_runtime.core.description import ModelDescription
from gicnet_runtime.core.ensemble import ENERGY_THRESHOLD_EV
from gicnet_runtime.core.trajectory import Trajectory
from gicnet_runtime.errors import InputError, ModelError
from gicnet_runtime.io.ase_formats import frame_atoms
from gicnet_runtime.io.initial import InitialConditions
from gicnet_runtime.units import (
    ASE_TIME_UNIT_IN_FS,
    a_per_fs_to_ase_velocities,
    ase_velocities_to_a_per_fs,
)
from gicnet_runtime.unroll.propagate import Unrolling
from gicnet_runtime.unroll.sinks import Frame, FrameQueue

try:
    from ase import Atoms
    from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
    from ase.md.md import MolecularDynamics
except ImportError:  # an optional dependency: say which extra brings it
    raise InputError("ASE is needed for gicnet_runtime.integrations.ase: "
                     "install gicnet[io]") from None

if TYPE_CHECKING:  # only for annotations: converting Atoms needs no onnxruntime
    from gicnet_runtime.core.model import Model

#: The ``atoms.info`` key holding a frame's time, fs (as gicnet's .traj/extxyz files do).
TIME_KEY = "time_fs"


def atoms_to_state(atoms: Atoms | Sequence[Atoms], description: ModelDescription | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of one Atoms, or of a list of Atoms of one molecule.

    Args:
        atoms: one Atoms (one initial condition) or a non-empty sequence of B Atoms with
            the same atoms in the same order.  Atoms without momenta are at rest.
        description: a model's description: when given, the atomic numbers must be the
            model's in the model's order, and the masses the model's (within
            ``MASS_TOLERANCE_AMU`` of :mod:`gicnet_runtime.io.initial`: a model knows only
            the masses, isotopes included, it was trained with); else InputError.

    Returns:
        positions, Å, and velocities, Å/fs, float64: (N, 3) each for one Atoms (as
        :meth:`Model.predict` takes one unbatched initial condition), (B, N, 3) for a list.
    """
    single = isinstance(atoms, Atoms)
    frames = [atoms] if single else list(atoms)
    if not frames:
        raise InputError("no Atoms given")
    first = frames[0]
    for n, frame in enumerate(frames):
        if not isinstance(frame, Atoms):
            raise InputError(f"item {n} is a {type(frame).__name__}, not an ase.Atoms")
        if len(frame) != len(first) or np.any(frame.numbers != first.numbers):
            raise InputError(f"Atoms {n} has different atoms from Atoms 0")
    state = InitialConditions(
        positions=np.stack([frame.get_positions() for frame in frames]),
        velocities=ase_velocities_to_a_per_fs(np.stack([f.get_velocities() for f in frames])),
        atomic_numbers=first.numbers, masses_amu=first.get_masses())
    if description is not None:
        state.check_model(description)
    if single:
        return state.positions[0], state.velocities[0]
    return state.positions, state.velocities


def trajectory_to_atoms(traj: Trajectory) -> list[Atoms]:
    """One Atoms per frame of ``traj``.

    Each has the frame's positions (Å), velocities (as ASE momenta, ASE units), the
    trajectory's masses (amu), ``info["time_fs"]`` (fs) and, when the potential energy is
    known, a ``SinglePointCalculator`` holding it (eV), so ``get_potential_energy()``
    works; ``get_kinetic_energy()`` equals ``traj.kinetic_energy`` (also in
    ``info["kinetic_energy_eV"]``): the frames gicnet writes to ASE .traj files.
    """
    return [frame_atoms(traj, i) for i in range(traj.n_frames)]


class GicnetCalculator(Calculator):
    """A gicnet model's potential energy as an ASE calculator (eV).

    ``energy`` is the model's energy output at t = 0 from the atoms' state (the ensemble
    mean): its auxiliary energy model of the positions.  Under :class:`GicnetDynamics` it
    is instead each frame's predicted energy, exactly the ``potential_energy`` of
    :meth:`Model.propagate`'s trajectory.

    There are no forces: a 4D model predicts where the atoms go, not the forces that move
    them; its energy model was fitted to energies alone and runs in float32 (~3e-5 eV
    steps at -310 eV), so a finite-difference gradient would be neither trained nor
    precise.  Asking for forces (or for energy from a model without an energy output)
    raises ASE's ``PropertyNotImplementedError``, which ASE's trajectory writers skip;
    :class:`GicnetDynamics` never asks.
    """

    implemented_properties = ["energy"]

    def __init__(self, model: Model, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        if not model.description.has_energy:
            self.implemented_properties = []

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name not in self.implemented_properties:
            raise PropertyNotImplementedError(_missing_property(name))
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        prediction = self.model.predict(self.atoms, times_fs=[0.0])
        self.results = {"energy": float(prediction.potential_energy[0])}

    def set_frame(self, atoms: Atoms, potential_eV: float | None) -> None:
        """Take ``potential_eV`` (eV, or None: unknown) as the energy of ``atoms``' current
        state, without a model call (the frame's energy predicted with its positions)."""
        self.atoms = atoms.copy()
        self.results = {} if potential_eV is None else {"energy": float(potential_eV)}


def _missing_property(name: str) -> str:
    if name == "forces":
        return ("gicnet models predict trajectories, not forces: GicnetCalculator gives the "
                "potential energy only; advance the atoms with GicnetDynamics")
    return f"GicnetCalculator does not provide {name} (only the energy of a model that has one)"


class GicnetDynamics(MolecularDynamics):
    """Molecular dynamics with a gicnet model in place of an integrator.

    Every step sets the atoms' positions and velocities to the model's frame one timestep
    later.  ``run(steps)`` (and ``irun``) unrolls the frames of its ``steps`` steps from the
    atoms' state at its start as :meth:`Model.propagate` would (the same frames), segment
    by segment while the steps go on, so memory does not grow with the run (a frame queue,
    :class:`gicnet_runtime.unroll.sinks.FrameQueue`); a second ``run`` continues from the
    atoms' current state
    (energy restoration then references the total energy at the start of that run, and
    its segments start there).  As in ASE, observers and the log see step 0 only on the
    first run.  ``dyn.step()`` outside ``run``/``irun`` has no planned frame: InputError.

    The atoms get a :class:`GicnetCalculator` (energy, no forces) that holds each frame's
    predicted potential energy, and ``atoms.info["time_fs"]``, the simulated time, fs.
    Constraints cannot be honoured (the model moves every atom): InputError.
    """

    def __init__(self, atoms: Atoms, model: Model, timestep: float, trajectory=None,
                 logfile=None, loginterval: int = 1, *, restore_energy: bool | None = None,
                 segment_fs: float | None = None,
                 energy_threshold_eV: float = ENERGY_THRESHOLD_EV, **kwargs) -> None:
        """
        Args:
            atoms: the molecule, in the model's atom order, with the model's masses.
            model: the gicnet model (:func:`gicnet_runtime.load_model`).
            timestep: ASE time units, like every ASE integrator (``0.5 * ase.units.fs``).
            trajectory, logfile, loginterval, kwargs: as for ASE's ``MolecularDynamics``.
            restore_energy, segment_fs, energy_threshold_eV: passed to
                :meth:`Model.propagate` (segment_fs in fs, the threshold in eV).
        """
        atoms_to_state(atoms, model.description)
        if atoms.constraints:
            raise InputError("GicnetDynamics cannot honour constraints: the model moves "
                             "every atom; remove atoms.constraints")
        if not (np.isfinite(timestep) and timestep > 0):
            raise InputError(f"timestep must be a positive number of ASE time units, "
                             f"got {timestep}")
        if logfile and not model.description.has_energy:
            raise InputError("the MD log needs potential energies, and this model has no "
                             "energy output: pass logfile=None")
        self.model = model
        self.propagate_options = {"restore_energy": restore_energy, "segment_fs": segment_fs,
                                  "energy_threshold_eV": energy_threshold_eV}
        self.calc = GicnetCalculator(model)
        atoms.calc = self.calc
        self._frames: Iterator[Frame] = iter(())
        super().__init__(atoms, timestep=timestep, trajectory=trajectory, logfile=logfile,
                         loginterval=loginterval, **kwargs)
        self._mark_time()

    @property
    def dt_fs(self) -> float:
        """The timestep, fs."""
        return self.dt * ASE_TIME_UNIT_IN_FS

    def todict(self) -> dict:
        return {**super().todict(), "models": [p.name for p in self.model.paths],
                **{k: v for k, v in self.propagate_options.items() if v is not None}}

    def irun(self, steps: int = 50):
        """Run ``steps`` steps as a generator (as ASE's ``MolecularDynamics.irun``, whose
        observer and log calls it keeps), yielding whether the last step is done.

        The frames are predicted before the first yield; ASE's own ``irun`` would ask
        for forces, which a 4D model has not.
        """
        self.max_steps = self.nsteps + steps
        if steps > 0:
            self._frames = self._frame_source(steps)
            self._show(next(self._frames), move=False)
        if self.nsteps == 0:
            self.log()
            self.call_observers()
        yield self.nsteps == self.max_steps
        while self.nsteps < self.max_steps:
            self.step()
            self.nsteps += 1
            self._mark_time()
            self.log()
            self.call_observers()
            yield self.nsteps == self.max_steps

    def step(self) -> None:
        """Move the atoms to the next predicted frame (positions and velocities)."""
        frame = next(self._frames, None)
        if frame is None:
            raise InputError("GicnetDynamics steps through the frames that run(steps) or "
                             "irun(steps) predicts; call one of those")
        self._show(frame)

    def _frame_source(self, steps: int) -> Iterator[Frame]:
        """The frames of the next ``steps`` steps from the atoms' current state, that state
        (frame 0) first, unrolled a segment at a time as they are consumed; ModelError at
        the step that has no frame when the trajectory failed (after the good ones)."""
        pos, vel, _ = self.model.validated_state(self.atoms, None)
        run = Unrolling(self.model, pos, vel, steps * self.dt_fs, self.dt_fs, FrameQueue,
                        **self.propagate_options)
        queue = run.sink.frames
        while queue or not run.done:
            while queue:
                yield queue.popleft()
            if not run.done:
                run.step()
        (result,) = run.finish()
        yield from queue
        if result.n_frames < steps + 1:
            failure = result.info.get("failure", "no frames after it")
            raise ModelError(f"the model's trajectory stops at t = "
                             f"{(result.n_frames - 1) * self.dt_fs:g} fs: {failure}")

    def _show(self, frame: Frame, move: bool = True) -> None:
        """Put ``frame`` on the atoms (unless ``move`` is False: the atoms already are in
        that state) and its energy in the calculator."""
        if move:
            self.atoms.set_positions(frame.positions, apply_constraint=False)
            self.atoms.set_velocities(a_per_fs_to_ase_velocities(frame.velocities))
        self.calc.set_frame(self.atoms, frame.potential_eV)

    def _mark_time(self) -> None:
        """``atoms.info["time_fs"]``: the simulated time, fs (read back from .traj files)."""
        self.atoms.info[TIME_KEY] = self.get_time() * ASE_TIME_UNIT_IN_FS
