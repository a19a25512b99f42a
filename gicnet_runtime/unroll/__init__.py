"""Unrolling: long trajectories as a chain of predicted segments, with ensemble choice,
backtracking, momentum and energy restoration, and resumable checkpoints."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "propagate": "propagate", "unroll_settings": "propagate",
    "UnrollState": "state", "SegmentPrediction": "state",
    "PropagateCheckpoint": "checkpoint", "checkpoint_path": "checkpoint",
    "restore_momentum": "momentum", "restore_centre_of_mass": "momentum",
    "restore_kinetic_energy": "energy_restore",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
