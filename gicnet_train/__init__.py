"""gicnet training: PyTorch model, geometry, data and ONNX export."""
