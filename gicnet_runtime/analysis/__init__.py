"""Analysis of trajectories and models: vibrational spectra, accuracy against reference
trajectories, integrated-gradients attributions, and their plots."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "power_spectrum": "spectrum", "find_peaks": "spectrum", "similarity": "spectrum",
    "Spectrum": "spectrum", "EvaluationSettings": "evaluate", "run_evaluation": "report",
    "integrated_gradients": "explain", "plot_spectrum": "plots",
    "plot_attributions": "plots",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
