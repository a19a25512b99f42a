"""Integrations with the field's libraries: ASE (:mod:`gicnet_runtime.integrations.ase`).

The names load lazily: importing this package imports no ASE.
"""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "GicnetDynamics": "ase", "GicnetCalculator": "ase",
    "atoms_to_state": "ase", "trajectory_to_atoms": "ase",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
