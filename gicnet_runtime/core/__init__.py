"""Core prediction: a model file's description, its onnxruntime session, one-segment
prediction (:class:`Model`), the time grid, internal coordinates and the trajectory type."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "Model": "model", "Prediction": "model", "load_model": "model",
    "Session": "session", "ModelDescription": "description", "ICDefinition": "icdef",
    "Coordinate": "internal", "Trajectory": "trajectory", "parse_times": "timegrid",
    "shipped_model": "shipped",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
