"""Analysis of trajectories and models: vibrational spectra, accuracy against reference
trajectories, integrated-gradients attributions (one frame, and aggregated over many),
cis/trans outcomes of trajectories, and their plots."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "power_spectrum": "spectrum", "find_peaks": "spectrum", "similarity": "spectrum",
    "Spectrum": "spectrum", "EvaluationSettings": "evaluate", "run_evaluation": "report",
    "integrated_gradients": "explain", "summarize": "attributions",
    "outcome": "isomers", "plot_spectrum": "plots", "plot_attributions": "plots",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
