"""The ANI-1x reference engine: the 8-model ensemble as a torch module and an ASE calculator.

The NeuroChem parameter files ship inside the torchani 2.2.4 wheel; the ensemble is
assembled here from those files with torchani's own loaders, because
``torchani.models.ANI1x()`` looks for an info file that the wheel leaves empty and then
tries to download the parameters.  It runs in float64 so that NVE trajectories conserve
energy as well as the integrator allows.  This module needs torch (gicnet[md]); the
torch-free runtime names it in its engine table (``gicnet_runtime.reference.engines``) and
imports it only when an ANI-1x calculator is made.
"""

from __future__ import annotations

from pathlib import Path

import torchani
from torchani import neurochem

from gicnet_runtime.errors import InputError

_ANI1X_DIR = "ani-1x_8x"
_ANI1X_CONSTANTS = "rHCNO-5.2R_16-3.5A_a4-8.params"
_ANI1X_SELF_ENERGIES = "sae_linfit.dat"
_ANI1X_ENSEMBLE_SIZE = 8


def resource_dir() -> Path:
    """Folder of the ANI-1x NeuroChem files inside the installed torchani package."""
    folder = Path(torchani.__file__).parent / "resources" / _ANI1X_DIR
    if not (folder / _ANI1X_CONSTANTS).is_file():
        raise InputError(f"ANI-1x parameter files not found in {folder}: "
                         "install torchani==2.2.4 (gicnet[md])")
    return folder


def build_model():
    """The ANI-1x ensemble as a float64 torch module mapping (species, coordinates Å) to
    energies in Hartree; species are indices into ``model.species`` (H, C, N, O)."""
    folder = resource_dir()
    consts = neurochem.Constants(str(folder / _ANI1X_CONSTANTS))
    aev_computer = torchani.AEVComputer(**consts)
    energy_shifter = neurochem.load_sae(str(folder / _ANI1X_SELF_ENERGIES))
    ensemble = neurochem.load_model_ensemble(consts.species, str(folder / "train"),
                                             _ANI1X_ENSEMBLE_SIZE)
    model = torchani.nn.Sequential(aev_computer, ensemble, energy_shifter).double()
    model.species = list(consts.species)
    return model


def calculator():
    """A fresh ASE calculator of the ANI-1x ensemble (energies eV, forces eV/Å)."""
    model = build_model()
    return torchani.ase.Calculator(model.species, model)
