"""gicnet runtime: torch-free prediction with exported GICnet models (numpy + onnxruntime)."""

from gicnet_runtime.errors import GeometryError, GicnetError, InputError, ModelError
from gicnet_runtime.trajectory import Trajectory

__all__ = [
    "GeometryError",
    "GicnetError",
    "InputError",
    "Model",
    "ModelError",
    "Prediction",
    "Trajectory",
    "load_model",
    "read_initial_conditions",
]

#: Names imported on first use, so that ``import gicnet_runtime`` stays free of onnxruntime.
_LAZY = {"load_model": "gicnet_runtime.model", "Model": "gicnet_runtime.model",
         "Prediction": "gicnet_runtime.model",
         "read_initial_conditions": "gicnet_runtime.initial"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gicnet_runtime' has no attribute {name!r}")
