"""File formats: trajectories (H5MD, extended XYZ, ASE .traj, MLatom npz) through one
format registry, initial conditions, and the outputs of the commands."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "read_trajectory": "formats", "read_trajectories": "formats",
    "write_trajectory": "formats", "format_of": "formats", "FORMATS": "formats",
    "read_initial_conditions": "initial", "InitialConditions": "initial",
    "write_trajectories": "outputs",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
