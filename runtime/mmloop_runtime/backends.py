"""The network call: ONNX Runtime for `end2end.onnx`, TensorRT for `end2end.engine`, OpenVINO for
`end2end.xml` (its IR; OpenVINO is optional, imported only for such a folder).

Each backend takes the voxelizer's arrays by input name and returns the head maps by output name,
as numpy arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

ONNX_FILE = "end2end.onnx"
ENGINE_FILE = "end2end.engine"
OPENVINO_FILE = "end2end.xml"  # with its weights beside it, end2end.bin


class Network(Protocol):
    name: str

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OnnxRuntimeNetwork:
    """An ONNX Runtime session on the CPU (or `providers`), all graph optimizations on, like mmdeploy's ORTWrapper."""

    def __init__(
        self, path: Path, outputs: tuple[str, ...], threads: int = 0, providers: list[str] | None = None
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        self.outputs = list(outputs)
        self.input_types = {item.name: _numpy_type(item.type) for item in self.session.get_inputs()}
        self.name = f"onnxruntime {ort.__version__} ({self.session.get_providers()[0]})"

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(value, dtype=self.input_types[name]) for name, value in inputs.items()}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))


def _numpy_type(onnx_type: str) -> type:
    return {
        "tensor(float)": np.float32,
        "tensor(int32)": np.int32,
        "tensor(int64)": np.int64,
        "tensor(float16)": np.float16,
    }[onnx_type]


class OpenVINONetwork:
    """An OpenVINO IR compiled for OpenVINO's CPU plugin, for latency (one stream).

    The plugin runs float layers in f32 (its default on CPUs with bf16 or fp16 units is to lower
    them: the fp32 parity check compares fp32 with fp32); a Q/DQ model's quantized layers run in
    int8 either way (OpenVINO's low-precision transformations).
    """

    def __init__(self, path: Path, outputs: tuple[str, ...], threads: int = 0) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeError(
                f"{path}: an OpenVINO model needs OpenVINO: pip install 'mmloop-runtime[openvino]'"
            ) from None
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_types = {port.any_name: port.element_type.to_dtype() for port in self.compiled.inputs}
        self.outputs = list(outputs)
        self.name = f"openvino {ov.__version__} (CPU)"

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(value, dtype=self.input_types[name]) for name, value in inputs.items()}
        results = self.request.infer(feed)
        # copies: the request's output tensors are overwritten by the next frame
        return {name: np.array(results[self.compiled.output(name)]) for name in self.outputs}


def cuda_runtime() -> Any:
    """CUDA's runtime API from cuda-python (12.x names it cuda.bindings.runtime, older cuda.cudart)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError:
            raise RuntimeError(
                "TensorRT engines need CUDA's runtime API for device memory: "
                "pip install 'mmloop-runtime[tensorrt]' (cuda-python)"
            ) from None
    return cudart


def _checked(result: tuple[Any, ...], what: str) -> Any:
    """cuda-python returns (error, value...): raise on an error, return the value(s)."""
    error, *values = result
    if int(error) != 0:
        raise RuntimeError(f"CUDA {what} failed: {error}")
    return values[0] if len(values) == 1 else tuple(values)


class TensorRTNetwork:
    """A serialized TensorRT >= 10 engine, run by tensor name with explicit shapes on one stream.

    Device buffers grow to the largest frame seen and are reused, so a steady stream of frames
    allocates nothing. mmdeploy's TensorRT 8 plugin library is never loaded: the exported
    PointPillars graph needs no plugin.
    """

    def __init__(self, path: Path, outputs: tuple[str, ...]) -> None:
        try:
            import tensorrt as trt
        except ImportError:
            raise RuntimeError(
                f"{path}: a TensorRT engine needs TensorRT >= 10: "
                f"pip install 'mmloop-runtime[tensorrt]' on a host with an NVIDIA GPU"
            ) from None
        if int(trt.__version__.split(".")[0]) < 10:
            raise RuntimeError(
                f"{path}: TensorRT {trt.__version__} found; the runtime uses TensorRT >= 10's tensor API"
            )
        self.cudart = cuda_runtime()
        count = _checked(self.cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if count < 1:
            raise RuntimeError(f"{path}: no CUDA GPU visible; a TensorRT engine runs only on the GPU it was built for")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"{path}: TensorRT {trt.__version__} could not load the engine; engines only run "
                f"with the TensorRT version and GPU model they were built with (see build_env.json)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = _checked(self.cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.outputs = list(outputs)
        self.dtypes = {
            name: np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            for name in (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))
        }
        self.buffers: dict[str, tuple[int, int]] = {}  # name: (device pointer, bytes)
        self.name = f"tensorrt {trt.__version__}"

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _checked(self.cudart.cudaFree(pointer), "cudaFree")
            pointer = int(_checked(self.cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        copy_in, copy_out = (
            self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        for name, value in inputs.items():
            host = np.ascontiguousarray(value, dtype=self.dtypes[name])
            pointer = self._buffer(name, max(host.nbytes, 1))
            _checked(
                self.cudart.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, copy_in, self.stream), "copy in"
            )
            self.context.set_input_shape(name, host.shape)
            self.context.set_tensor_address(name, pointer)
        results = {}
        for name in self.outputs:
            results[name] = np.empty(tuple(self.context.get_tensor_shape(name)), self.dtypes[name])
            self.context.set_tensor_address(name, self._buffer(name, max(results[name].nbytes, 1)))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log above)")
        for name, host in results.items():
            _checked(
                self.cudart.cudaMemcpyAsync(
                    host.ctypes.data, self.buffers[name][0], host.nbytes, copy_out, self.stream
                ),
                "copy out",
            )
        _checked(self.cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return {name: value.astype(np.float32, copy=False) for name, value in results.items()}

    def __del__(self) -> None:
        for pointer, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(pointer)


def open_network(model_dir: Path, outputs: tuple[str, ...], threads: int = 0) -> Network:
    """The folder's engine when it has one (a tensorrt-* target), its OpenVINO IR (openvino-*),
    else its ONNX graph."""
    if (model_dir / ENGINE_FILE).is_file():
        return TensorRTNetwork(model_dir / ENGINE_FILE, outputs)
    if (model_dir / OPENVINO_FILE).is_file():
        return OpenVINONetwork(model_dir / OPENVINO_FILE, outputs, threads)
    if (model_dir / ONNX_FILE).is_file():
        return OnnxRuntimeNetwork(model_dir / ONNX_FILE, outputs, threads)
    raise FileNotFoundError(
        f"{model_dir}: none of {ONNX_FILE}, {ENGINE_FILE}, {OPENVINO_FILE}; pass a deploy/<target> folder written by `dvc repro`"
    )
