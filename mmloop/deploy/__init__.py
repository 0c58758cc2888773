"""From the trained model to deployed models: ONNX export, int8 quantization, parity against
PyTorch and the torch-free runtime, and one module per backend under `backends/`."""
