"""gicnet runtime: torch-free prediction with exported GICnet models (numpy + onnxruntime)."""

from gicnet_runtime.errors import GeometryError, GicnetError, InputError, ModelError
from gicnet_runtime.trajectory import Trajectory

__all__ = ["GicnetError", "InputError", "ModelError", "GeometryError", "Trajectory"]
