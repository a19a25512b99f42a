"""gicnet runtime: torch-free prediction with exported GICnet models (numpy + onnxruntime).

Layers, each a subpackage that imports only the ones before it:

- :mod:`gicnet_runtime.core`: a model file, its session, one-segment prediction;
- :mod:`gicnet_runtime.io`: trajectory file formats, initial conditions, outputs;
- :mod:`gicnet_runtime.unroll`: long trajectories segment by segment, checkpoints;
- :mod:`gicnet_runtime.reference`: reference MD with ASE calculators (xTB, ANI-1x);
- :mod:`gicnet_runtime.analysis`: spectra, evaluation against references, attributions;
- :mod:`gicnet_runtime.integrations`: ASE (Atoms in and out, a MolecularDynamics);
- :mod:`gicnet_runtime.cli`: the ``gicnet`` command.

Shared by all: :mod:`~gicnet_runtime.units`, :mod:`~gicnet_runtime.errors`,
:mod:`~gicnet_runtime.atomic`, :mod:`~gicnet_runtime.jsonsafe`,
:mod:`~gicnet_runtime.progress`.  Nothing here imports torch or the training package.
"""

from gicnet_runtime._lazy import lazy_exports
from gicnet_runtime.errors import GeometryError, GicnetError, InputError, ModelError

_EXPORTS = {
    "Model": "core.model", "Prediction": "core.model", "load_model": "core.model",
    "Trajectory": "core.trajectory", "read_initial_conditions": "io.initial",
    "read_trajectory": "io.formats", "write_trajectory": "io.formats",
}
__all__ = [
    "GeometryError", "GicnetError", "InputError", "Model", "ModelError", "Prediction",
    "Trajectory", "load_model", "read_initial_conditions", "read_trajectory",
    "write_trajectory",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
