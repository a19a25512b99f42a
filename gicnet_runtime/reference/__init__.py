"""Reference molecular dynamics: the ASE calculators gicnet knows (GFN2-/GFN1-xTB through
tblite, ANI-1x through torchani) and Langevin-then-NVE trajectories with them."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "SimulationSettings": "simulate", "simulate_to_files": "simulate",
    "run_trajectory": "simulate",
    "get_engine": "engines", "make_calculator": "engines",
    "ENGINES": "engines",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
