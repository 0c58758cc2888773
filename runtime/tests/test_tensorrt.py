"""The runtime's TensorRT backend against stand-in `tensorrt` and `cuda` modules (no GPU here).

The stand-ins keep "device memory" in host arrays, so the test follows real bytes: inputs copied
in at the shapes given, an engine step that reads them by address, outputs copied back out.
"""

from __future__ import annotations

import ctypes
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmloop_runtime.backends import TensorRTNetwork, open_network

OUTPUTS = ("cls_score0", "bbox_pred0", "dir_cls_pred0")
DTYPES = {
    "voxels": np.float32,
    "num_points": np.int32,
    "coors": np.int32,
    "cls_score0": np.float32,
    "bbox_pred0": np.float32,
    "dir_cls_pred0": np.float32,
}


def fake_cuda(devices: int = 1) -> tuple[types.ModuleType, dict[int, np.ndarray]]:
    memory: dict[int, np.ndarray] = {}
    cudart = types.ModuleType("cudart")
    cudart.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice="H2D", cudaMemcpyDeviceToHost="D2H")

    def malloc(nbytes: int) -> tuple[int, int]:
        block = np.zeros(nbytes, np.uint8)
        memory[block.ctypes.data] = block
        return 0, block.ctypes.data

    def free(pointer: int) -> tuple[int]:
        memory.pop(pointer)
        return (0,)

    def memcpy(dst: int, src: int, nbytes: int, kind: str, stream: Any) -> tuple[int]:
        assert (dst in memory) == (kind == "H2D") and (src in memory) == (kind == "D2H")
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    cudart.cudaGetDeviceCount = lambda: (0, devices)
    cudart.cudaMalloc, cudart.cudaFree, cudart.cudaMemcpyAsync = malloc, free, memcpy
    cudart.cudaStreamCreate = lambda: (0, "stream")
    cudart.cudaStreamSynchronize = lambda stream: (0,)
    return cudart, memory


def fake_tensorrt(version: str = "10.15.0") -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class Logger:
        WARNING = "warning"

        def __init__(self, severity: str) -> None:
            self.severity = severity

    class Context:
        """cls_score0 = number of voxels, bbox_pred0 = sum of num_points, dir_cls_pred0 = max coor."""

        def __init__(self) -> None:
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return {"cls_score0": (1, 18, 4, 4), "bbox_pred0": (1, 42, 4, 4), "dir_cls_pred0": (1, 12, 4, 4)}[name]

        def set_tensor_address(self, name: str, address: int) -> bool:
            self.addresses[name] = address
            return True

        def read(self, name: str) -> np.ndarray:
            count = int(np.prod(self.shapes[name]))
            raw = (ctypes.c_char * (count * 4)).from_address(self.addresses[name])
            return np.frombuffer(bytes(raw), DTYPES[name]).reshape(self.shapes[name])

        def write(self, name: str, value: float) -> None:
            out = np.full(self.get_tensor_shape(name), value, np.float32)
            ctypes.memmove(self.addresses[name], out.ctypes.data, out.nbytes)

        def execute_async_v3(self, stream: Any) -> bool:
            self.write("cls_score0", len(self.read("voxels")))
            self.write("bbox_pred0", self.read("num_points").sum())
            self.write("dir_cls_pred0", self.read("coors").max())
            return True

    class Engine:
        num_io_tensors = 6

        def get_tensor_name(self, index: int) -> str:
            return list(DTYPES)[index]

        def get_tensor_dtype(self, name: str) -> str:
            return name

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            return Engine() if data == b"engine" else None

    trt.Logger, trt.Runtime = Logger, Runtime
    trt.nptype = lambda name: DTYPES[name]
    return trt


@pytest.fixture
def engine_file(tmp_path: Path) -> Path:
    path = tmp_path / "end2end.engine"
    path.write_bytes(b"engine")
    return path


def install(monkeypatch: pytest.MonkeyPatch, trt: types.ModuleType | None, cudart: types.ModuleType | None) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    if cudart is not None:
        bindings.runtime = cudart
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings if cudart is not None else None)


def test_engine_runs_by_tensor_name_with_the_frames_shapes(monkeypatch: pytest.MonkeyPatch, engine_file: Path) -> None:
    cudart, memory = fake_cuda()
    install(monkeypatch, fake_tensorrt(), cudart)
    network = open_network(engine_file.parent, OUTPUTS)
    assert isinstance(network, TensorRTNetwork) and network.name == "tensorrt 10.15.0"
    for voxels in (5, 300, 40):  # the buffers grow to the largest frame and are then reused
        inputs = {
            "voxels": np.ones((voxels, 32, 4), np.float32),
            "num_points": np.full(voxels, 3, np.int64),
            "coors": np.arange(voxels * 4).reshape(voxels, 4),
        }
        outputs = network(inputs)
        assert network.context.shapes == {"voxels": (voxels, 32, 4), "num_points": (voxels,), "coors": (voxels, 4)}
        assert outputs["cls_score0"].shape == (1, 18, 4, 4) and (outputs["cls_score0"] == voxels).all()
        assert (outputs["bbox_pred0"] == 3 * voxels).all() and (outputs["dir_cls_pred0"] == voxels * 4 - 1).all()
    assert len(memory) == 6  # one buffer per tensor, grown in place of the old one
    del network
    assert memory == {}


def test_tensorrt_backend_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, engine_file: Path) -> None:
    cases = [
        (None, fake_cuda()[0], "a TensorRT engine needs TensorRT >= 10: pip install 'mmloop-runtime[tensorrt]'"),
        (fake_tensorrt("8.6.1"), fake_cuda()[0], "TensorRT 8.6.1 found; the runtime uses TensorRT >= 10's tensor API"),
        (
            fake_tensorrt(),
            None,
            "TensorRT engines need CUDA's runtime API for device memory: "
            "pip install 'mmloop-runtime[tensorrt]' (cuda-python)",
        ),
        (fake_tensorrt(), fake_cuda(devices=0)[0], "no CUDA GPU visible"),
    ]
    for trt, cudart, message in cases:
        install(monkeypatch, trt, cudart)
        with pytest.raises(RuntimeError) as error:
            TensorRTNetwork(engine_file, OUTPUTS)
        assert message in str(error.value) and "\n" not in str(error.value)
    install(monkeypatch, fake_tensorrt(), fake_cuda()[0])
    engine_file.write_bytes(b"built for another GPU")
    with pytest.raises(RuntimeError, match="could not load the engine; engines only run with the TensorRT version"):
        TensorRTNetwork(engine_file, OUTPUTS)
