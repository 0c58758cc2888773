"""TensorRT >= 10: the engine builder and wrapper (engine.py), and what its ONNX parser takes (readiness.py)."""
