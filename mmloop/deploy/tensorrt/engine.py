"""Building a TensorRT engine from the exported ONNX, and running it under mmdeploy's backend model.

Our own, for TensorRT >= 10 (`pip install tensorrt-cu12`): mmdeploy 1.3.1's TensorRT path is
written for TensorRT 8 (binding indices, `max_workspace_size`, implicit-batch remnants) and its
`libmmdeploy_tensorrt_ops.so` links TensorRT 8 (libnvinfer.so.8), so it must never be loaded
under 10+. mmdeploy loads it only from its own builder, loader and TRTWrapper, none of which run
here: we use mmdeploy for what surrounds the engine (voxelization, box decoding) and swap its
wrapper for ours while the backend model is built (`tensorrt_backend_model`).

Precision differs by TensorRT version. TensorRT 10 still has weak typing: fp16 is the FP16 builder
flag on the fp32 ONNX, int8 the INT8 flag with an entropy calibrator (implicit quantization,
deprecated). TensorRT 11 removed those flags, networks are strongly typed and take their precision
from the ONNX: fp16 from an fp16-converted graph, int8 from explicit Q/DQ nodes.
"""

from __future__ import annotations

import platform
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from mmdeploy.backend.base import BaseWrapper

from mmloop.core.stage import StageError, written_whole
from mmloop.deploy.tensorrt.readiness import Profile

PRECISIONS = ("fp32", "fp16", "int8")
TENSORRT_PARAMS = ("workspace_mib",)
#: What the exported graph's inputs hold (calibration frames are cast to these).
INPUT_DTYPES = {"voxels": np.float32, "num_points": np.int32, "coors": np.int32}

FrameArrays = dict[str, np.ndarray]


def require_tensorrt(target: str) -> ModuleType:
    """The `tensorrt` module, or one line saying why this host cannot build `target`; cheap, so a
    stage calls it before any long work."""
    remedy = (
        f"on a host with an NVIDIA GPU and driver, `pip install tensorrt-cu12` (TensorRT >= 10) "
        f"and a CUDA build of torch (README, GPU hosts); or remove {target} from deploy.targets "
        "in params.yaml"
    )
    try:
        import tensorrt as trt
    except ImportError as error:
        detail = "" if isinstance(error, ModuleNotFoundError) else f" ({' '.join(str(error).split())})"
        raise StageError(f"deploy target {target}: TensorRT is not installed{detail}; {remedy}") from None
    version = str(getattr(trt, "__version__", "0"))
    if int(version.split(".")[0]) < 10:
        raise StageError(
            f"deploy target {target}: TensorRT {version} is too old, mmloop builds with the "
            f"TensorRT >= 10 API; `pip install -U tensorrt-cu12`, or remove {target} from "
            "deploy.targets in params.yaml"
        )
    if not torch.cuda.is_available():
        raise StageError(
            f"deploy target {target}: torch sees no CUDA GPU (CPU build of torch or no "
            f"driver) and TensorRT engines build and run only on one; {remedy}"
        )
    return trt


@dataclass(frozen=True)
class EngineSpec:
    """What to build: precision, builder workspace, and one optimization profile per input."""

    precision: str
    workspace_mib: int
    profiles: dict[str, Profile]


def engine_spec(precision: str, tensorrt_params: Any, profiles: dict[str, Profile]) -> EngineSpec:
    """The spec from a target's precision and params.yaml `deploy.tensorrt`."""
    if precision not in PRECISIONS:
        raise StageError(f"TensorRT precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if not isinstance(tensorrt_params, dict):
        raise StageError("params.yaml: deploy.tensorrt must be a mapping, e.g. {workspace_mib: 2048}")
    unknown = sorted(set(tensorrt_params) - set(TENSORRT_PARAMS))
    if unknown:
        raise StageError(f"params.yaml: deploy.tensorrt has unknown keys {unknown}; it takes {list(TENSORRT_PARAMS)}")
    workspace = tensorrt_params.get("workspace_mib")
    if not isinstance(workspace, int) or isinstance(workspace, bool) or workspace < 1:
        raise StageError(
            f"params.yaml: deploy.tensorrt.workspace_mib is {workspace!r}; give the builder's "
            "workspace limit in MiB, e.g. 2048"
        )
    if not profiles:
        raise StageError("TensorRT engine needs an optimization profile; set deploy.voxels in params.yaml")
    return EngineSpec(precision, workspace, profiles)


@dataclass(frozen=True)
class BuildPlan:
    """How this TensorRT version builds a precision: which ONNX (fp32 | fp16 | qdq), strongly typed
    or not, which BuilderFlag names to set and to clear, and whether an int8 calibrator runs."""

    onnx_variant: str
    strongly_typed: bool
    flags: tuple[str, ...]
    calibrator: bool
    cleared_flags: tuple[str, ...] = ()


def build_plan(trt: ModuleType, precision: str) -> BuildPlan:
    """The plan for `precision` on this TensorRT: weak typing flags where they exist (10.x), strong
    typing from a converted ONNX where they are gone (11+)."""
    weak = hasattr(trt.BuilderFlag, "FP16")
    if precision == "fp32":
        # TF32 is on by default and rounds fp32 matmul/conv inputs to a 10-bit mantissa on Ampere+;
        # an fp32 engine is the one compared with PyTorch at tight tolerance, so it computes in fp32
        tf32 = ("TF32",) if hasattr(trt.BuilderFlag, "TF32") else ()
        return BuildPlan("fp32", strongly_typed=not weak, flags=(), calibrator=False, cleared_flags=tf32)
    if precision == "fp16":
        if weak:
            return BuildPlan("fp32", strongly_typed=False, flags=("FP16",), calibrator=False)
        return BuildPlan("fp16", strongly_typed=True, flags=(), calibrator=False)
    if precision == "int8":
        if weak and hasattr(trt.BuilderFlag, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2"):
            # FP16 too: layers without an int8 kernel fall back to fp16 rather than fp32
            return BuildPlan("fp32", strongly_typed=False, flags=("INT8", "FP16"), calibrator=True)
        return BuildPlan("qdq", strongly_typed=True, flags=(), calibrator=False)
    raise StageError(f"TensorRT precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")


def fp16_onnx(src: Path, dst: Path) -> None:
    """`src` with float16 weights and compute but float32 inputs and outputs (what a strongly typed
    TensorRT 11 network needs to run in fp16)."""
    import onnx
    from onnxconverter_common import float16

    converted = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    # The converter retypes a Cast's output to float16 but leaves the node casting to float32
    # (PointPillars' num_points and coordinate casts): the graph then contradicts itself, which
    # onnx.checker's full check and a strongly typed TensorRT network both reject.
    fp16_tensors = {
        info.name for info in converted.graph.value_info if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    for node in converted.graph.node:
        if node.op_type == "Cast" and node.output[0] in fp16_tensors:
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT16
    with written_whole(dst) as tmp:
        onnx.save(converted, str(tmp))


def fit_voxel_count(frame: FrameArrays, count: int) -> FrameArrays:
    """`frame` with exactly `count` voxels: extra ones dropped, too few repeated. Calibration runs
    at the profile's opt shape only; a repeated voxel scatters the same pillar to the same cell, so
    the head sees the same frame (zero padding would put fake pillars at cell 0)."""
    present = len(frame["num_points"])
    if present == 0:
        raise StageError("int8 calibration frame has no voxels; pick frames with points in range")
    keep = np.arange(count) % present
    return {name: np.ascontiguousarray(frame[name][keep], dtype=INPUT_DTYPES.get(name)) for name in frame}


def voxel_calibrator(
    trt: ModuleType, frames: Iterable[FrameArrays], profiles: dict[str, Profile], device: str = "cuda"
) -> Any:
    """A TensorRT 10 IInt8EntropyCalibrator2 feeding `frames` one at a time, each fitted to the
    profile's opt voxel count; the calibration cache stays in memory."""
    opt_count = next(iter(profiles.values()))[1][0]

    class VoxelCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()  # pybind11 trampolines need the base initialised
            self.frames: Iterator[FrameArrays] = iter(frames)
            self.batch: list[torch.Tensor] = []  # kept alive while TensorRT reads them
            self.cache: bytes | None = None

        def get_batch_size(self) -> int:
            return 1  # explicit batch: the batch is inside the shapes

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            frame = next(self.frames, None)
            if frame is None:
                return None
            fitted = fit_voxel_count(frame, opt_count)
            self.batch = [torch.from_numpy(fitted[name]).to(device) for name in names]
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return [int(tensor.data_ptr()) for tensor in self.batch]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache

        def write_calibration_cache(self, cache: Any) -> None:
            self.cache = bytes(cache)

    return VoxelCalibrator()


def network_flags(trt: ModuleType, plan: BuildPlan) -> int:
    """create_network flags: 0 is explicit batch (the only mode since 10); STRONGLY_TYPED when the
    plan says, if this TensorRT still has the flag (strong typing is the default from 11)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 1 << int(flag) if plan.strongly_typed and flag is not None else 0


def parse_onnx(trt: ModuleType, network: Any, logger: Any, onnx_path: Path) -> Any:
    """Parse `onnx_path` into `network`; every parser error in one StageError line."""
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file: external weights resolve
        errors = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            errors.append(f"node {error.node_name()} ({error.node_operator()}): {error.desc()}")
        text = " ".join("; ".join(errors).split()) or "no details"
        raise StageError(f"{onnx_path}: TensorRT's ONNX parser rejects the graph: {text}")
    return parser


def build_engine(
    trt: ModuleType,
    onnx_path: Path,
    spec: EngineSpec,
    plan: BuildPlan,
    calibration: Iterable[FrameArrays] | None,
    timing_cache: bytes | None = None,
) -> tuple[bytes, bytes]:
    """(serialized engine, serialized timing cache) for `onnx_path` built as `spec` says; pass a
    previous timing cache to skip re-timing kernels on the same GPU and TensorRT."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = parse_onnx(trt, network, logger, onnx_path)  # owns the network's weights: keep until built
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    if inputs != set(spec.profiles):
        raise StageError(
            f"{onnx_path}: inputs {sorted(inputs)} but the optimization profile covers "
            f"{sorted(spec.profiles)}; re-run `dvc repro export`"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mib << 20)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in spec.profiles.items():
        profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(profile) < 0:
        raise StageError(f"TensorRT rejects the optimization profile {spec.profiles}; check deploy.voxels")
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.cleared_flags:
        config.clear_flag(getattr(trt.BuilderFlag, flag))
    if plan.calibrator:
        if calibration is None:
            raise StageError(f"TensorRT {trt.__version__} int8 needs calibration frames; none were given")
        config.int8_calibrator = voxel_calibrator(trt, calibration, spec.profiles)
        config.set_calibration_profile(profile)
    cache = config.create_timing_cache(timing_cache or b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        # a cache from another GPU or TensorRT: start afresh rather than mix timings
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    del parser
    if serialized is None:
        raise StageError(
            f"{onnx_path}: TensorRT could not build the {spec.precision} engine (its errors "
            "are above); a larger deploy.tensorrt.workspace_mib or another precision may help"
        )
    return bytes(serialized), bytes(cache.serialize())


def build_environment(trt: ModuleType) -> dict[str, Any]:
    """Where an engine was built: an engine only runs on the same GPU model and TensorRT version."""
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": f"{props.major}.{props.minor}",
        "gpu_memory_mib": props.total_memory >> 20,
        "tensorrt": trt.__version__,
        "cuda": torch.version.cuda,
        "driver": nvidia_driver(),
        "torch": torch.__version__,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def nvidia_driver() -> str | None:
    """The NVIDIA kernel driver version from /proc (Linux), None where it is not there."""
    try:
        line = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    words = line.split()
    return next((w for w in words if w[:1].isdigit() and "." in w), None)


def torch_dtype(trt: ModuleType, dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT tensor type."""
    names = {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "int32": torch.int32,
        "int64": torch.int64,
        "int8": torch.int8,
        "uint8": torch.uint8,
        "bool": torch.bool,
    }
    for name, torch_type in names.items():
        if hasattr(trt, name) and dtype == getattr(trt, name):
            return torch_type
    raise StageError(f"TensorRT engine tensor type {dtype} has no torch equivalent")


class TensorRTWrapper(BaseWrapper):
    """An engine behind mmdeploy's wrapper interface, through TensorRT 10+ name-based I/O."""

    def __init__(self, engine_file: Path, output_names: Sequence[str] | None = None, device: str = "cuda") -> None:
        import tensorrt as trt

        super().__init__(list(output_names or ()))
        self.trt = trt
        self.device = torch.device(device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)  # must outlive the engine it deserializes
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_file).read_bytes())
        if self.engine is None:
            raise StageError(
                f"{engine_file}: TensorRT {trt.__version__} cannot load this engine (built "
                "with another TensorRT or GPU?); rebuild it with `dvc repro`"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if not output_names:
            self.output_names = self.outputs

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feeds = []  # kept until the launch is queued
        for name in self.inputs:
            dtype = torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
            tensor = inputs[name].to(self.device, dtype).contiguous()
            feeds.append(tensor)
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                low, _, high = self.engine.get_tensor_profile_shape(name, 0)
                raise StageError(
                    f"{name} has shape {tuple(tensor.shape)}, outside the engine's profile "
                    f"{tuple(low)}..{tuple(high)}; widen deploy.voxels in params.yaml"
                )
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
            outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream(self.device).cuda_stream if self.device.type == "cuda" else 0
        if not self.context.execute_async_v3(stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
        return outputs


def build_tensorrt_wrapper(
    cls: type,
    backend_files: Sequence[str],
    device: str = "cuda",
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    deploy_cfg: Any = None,
    **kwargs: Any,
) -> BaseWrapper:
    """TensorRTManager.build_wrapper's signature, building our wrapper."""
    return TensorRTWrapper(Path(backend_files[0]), output_names, device)


@contextmanager
def tensorrt_backend_model() -> Iterator[None]:
    """Within the block, mmdeploy builds TensorRT backend models (`build_task_processor(...)
    .build_backend_model([engine])`) around our TensorRTWrapper, not its TensorRT 8 TRTWrapper:
    only its backend manager's build_wrapper is swapped, and restored on exit."""
    from mmdeploy.backend.base import get_backend_manager

    # the lookup BaseBackendModel._build_wrapper makes; it imports mmdeploy.backend.tensorrt and
    # would still find the manager if mmdeploy's TensorRT 8 helpers failed to import beside it
    manager = get_backend_manager("tensorrt")
    original = manager.__dict__["build_wrapper"]
    manager.build_wrapper = classmethod(build_tensorrt_wrapper)
    try:
        yield
    finally:
        manager.build_wrapper = original
