"""The TensorRT engine side of `deploy` (mmloop.deploy.tensorrt.engine), on a CPU host without
TensorRT: build plans and the engine build against fake `tensorrt` modules (TensorRT 10 with weak
typing, 11 without), int8 calibration frames, the no-TensorRT / no-GPU / too-old messages, the fp16
ONNX, and the swap of mmdeploy's wrapper. (Readiness of graphs and profiles: test_readiness.py.)"""

from __future__ import annotations

import enum
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mmloop.core.stage import StageError
from mmloop.deploy.tensorrt import engine
from mmloop.deploy.tensorrt.readiness import input_profiles, trt_readiness
from tests.helpers import REPO

PROFILES = input_profiles({"min": 2, "opt": 8, "max": 16}, 32, 4)


# --- engine spec and build plans ---


def test_engine_spec_from_params() -> None:
    spec = engine.engine_spec("fp16", {"workspace_mib": 2048}, PROFILES)
    assert spec == engine.EngineSpec("fp16", 2048, PROFILES)


@pytest.mark.parametrize(
    "precision, params, message",
    [
        ("bf16", {"workspace_mib": 2048}, "precision 'bf16' is unknown"),
        ("fp32", {"workspace_mib": 2048, "workspace": 1}, r"unknown keys \['workspace'\]"),
        ("fp32", {}, "workspace_mib is None"),
        ("fp32", {"workspace_mib": 0}, "workspace_mib is 0"),
        ("fp32", {"workspace_mib": "2G"}, "workspace_mib is '2G'"),
        ("fp32", [2048], "must be a mapping"),
    ],
)
def test_engine_spec_rejects_bad_params(precision: str, params: Any, message: str) -> None:
    with pytest.raises(StageError, match=message):
        engine.engine_spec(precision, params, PROFILES)


@pytest.mark.parametrize(
    "major, precision, expected",
    [
        (
            10,
            "fp32",
            engine.BuildPlan("fp32", strongly_typed=False, flags=(), calibrator=False, cleared_flags=("TF32",)),
        ),
        (10, "fp16", engine.BuildPlan("fp32", strongly_typed=False, flags=("FP16",), calibrator=False)),
        (10, "int8", engine.BuildPlan("fp32", strongly_typed=False, flags=("INT8", "FP16"), calibrator=True)),
        (
            11,
            "fp32",
            engine.BuildPlan("fp32", strongly_typed=True, flags=(), calibrator=False, cleared_flags=("TF32",)),
        ),
        (11, "fp16", engine.BuildPlan("fp16", strongly_typed=True, flags=(), calibrator=False)),
        (11, "int8", engine.BuildPlan("qdq", strongly_typed=True, flags=(), calibrator=False)),
    ],
)
def test_build_plan_per_tensorrt_version(major: int, precision: str, expected: engine.BuildPlan) -> None:
    assert engine.build_plan(fake_trt(major), precision) == expected


def test_build_plan_rejects_unknown_precision() -> None:
    with pytest.raises(StageError, match="precision 'int4' is unknown"):
        engine.build_plan(fake_trt(11), "int4")


# --- build_engine against a fake tensorrt that records what it is asked ---


class FakeCalibratorBase:
    """Stands in for tensorrt.IInt8EntropyCalibrator2 (a pybind11 class to subclass)."""

    def __init__(self) -> None:
        self.base_initialised = True


def fake_trt(
    major: int,
    parse_errors: tuple[tuple[str, str, str], ...] = (),
    built: bytes | None = b"plan",
    network_inputs: tuple[str, ...] = ("voxels", "num_points", "coors"),
    strongly_typed_flag: bool = True,
) -> Any:
    """A `tensorrt` stand-in: TensorRT 10 has the FP16/INT8 flags and the entropy calibrator,
    11 has neither. What the build asks of it lands in `trt.seen`."""
    seen: dict[str, Any] = {}

    class Logger:
        WARNING = "warning"

        def __init__(self, severity: str) -> None:
            self.severity = severity

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[Any, ...]] = {}

        def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
            self.shapes[name] = (low, opt, high)

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return b"timings after " + (self.data or b"nothing")

    class Config:
        def __init__(self) -> None:
            self.pools: dict[Any, int] = {}
            self.flags: list[Any] = []
            self.cleared: list[Any] = []
            self.profiles: list[Profile] = []
            self.caches: list[TimingCache] = []
            self.timing_cache: TimingCache | None = None
            self.int8_calibrator: Any = None
            self.calibration_profile: Profile | None = None
            seen["config"] = self

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self.pools[pool] = size

        def add_optimization_profile(self, profile: Profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_flag(self, flag: Any) -> None:
            self.flags.append(flag)

        def clear_flag(self, flag: Any) -> None:
            self.cleared.append(flag)

        def create_timing_cache(self, data: bytes) -> TimingCache:
            self.caches.append(TimingCache(bytes(data)))
            return self.caches[-1]

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self.timing_cache = cache
            return True

        def set_calibration_profile(self, profile: Profile) -> None:
            self.calibration_profile = profile

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.num_inputs = len(network_inputs)

        def get_input(self, index: int) -> Any:
            return types.SimpleNamespace(name=network_inputs[index])

    class Builder:
        def __init__(self, logger: Logger) -> None:
            seen["builder"] = self

        def create_network(self, flags: int) -> Network:
            seen["network"] = Network(flags)
            return seen["network"]

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            seen["built_with"] = (network, config)
            return built

    class ParserError:
        def __init__(self, node: str, op: str, desc: str) -> None:
            self.node, self.op, self.text = node, op, desc

        def node_name(self) -> str:
            return self.node

        def node_operator(self) -> str:
            return self.op

        def desc(self) -> str:
            return self.text

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.num_errors = len(parse_errors)

        def parse_from_file(self, path: str) -> bool:
            seen["parsed"] = path
            return not parse_errors

        def get_error(self, index: int) -> ParserError:
            return ParserError(*parse_errors[index])

    creation = {"EXPLICIT_BATCH": 0, **({"STRONGLY_TYPED": 1} if strongly_typed_flag else {})}
    trt = types.SimpleNamespace(
        __version__=f"{major}.4.0",
        seen=seen,
        Logger=Logger,
        Builder=Builder,
        OnnxParser=OnnxParser,
        BuilderFlag=enum.IntEnum("BuilderFlag", ["FP16", "INT8", "TF32"] if major == 10 else ["TF32"]),
        NetworkDefinitionCreationFlag=enum.IntEnum("NetworkDefinitionCreationFlag", creation),
        MemoryPoolType=enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0}),
    )
    if major == 10:
        trt.IInt8EntropyCalibrator2 = FakeCalibratorBase
    return trt


def build(
    trt: Any,
    precision: str,
    calibration: Any = None,
    timing_cache: bytes | None = None,
    profiles: dict[str, Any] = PROFILES,
) -> tuple[bytes, bytes]:
    spec = engine.engine_spec(precision, {"workspace_mib": 512}, profiles)
    return engine.build_engine(
        trt, Path("deploy/end2end.onnx"), spec, engine.build_plan(trt, precision), calibration, timing_cache
    )


@pytest.mark.parametrize(
    "major, precision, flags, cleared, network_flags",
    [
        (10, "fp32", [], ["TF32"], 0),
        (10, "fp16", ["FP16"], [], 0),
        (11, "fp32", [], ["TF32"], 1 << 1),
        (11, "fp16", [], [], 1 << 1),
        (11, "int8", [], [], 1 << 1),
    ],
)
def test_build_engine_sets_profile_workspace_flags_and_typing(
    major: int, precision: str, flags: list[str], cleared: list[str], network_flags: int
) -> None:
    trt = fake_trt(major)
    serialized, timings = build(trt, precision)
    config = trt.seen["config"]
    assert serialized == b"plan" and trt.seen["parsed"] == "deploy/end2end.onnx"
    assert len(config.profiles) == 1 and config.profiles[0].shapes == PROFILES
    assert config.pools == {trt.MemoryPoolType.WORKSPACE: 512 * 1024 * 1024}
    assert [flag.name for flag in config.flags] == flags
    assert [flag.name for flag in config.cleared] == cleared  # fp32 means no TF32 rounding
    assert trt.seen["network"].flags == network_flags
    assert config.int8_calibrator is None and config.calibration_profile is None
    # a fresh timing cache, attached to the config and returned after the build
    assert [cache.data for cache in config.caches] == [b""] and config.timing_cache is config.caches[0]
    assert timings == b"timings after nothing"


def test_build_engine_int8_on_tensorrt_10_calibrates_at_the_profile() -> None:
    trt = fake_trt(10)
    build(trt, "int8", calibration=[])
    config = trt.seen["config"]
    assert [flag.name for flag in config.flags] == ["INT8", "FP16"]
    assert isinstance(config.int8_calibrator, FakeCalibratorBase) and config.int8_calibrator.base_initialised
    assert config.calibration_profile is config.profiles[0]


def test_build_engine_int8_on_tensorrt_10_needs_frames() -> None:
    with pytest.raises(StageError, match="int8 needs calibration frames"):
        build(fake_trt(10), "int8", calibration=None)


def test_strong_typing_without_the_flag_is_the_default_network() -> None:
    trt = fake_trt(11, strongly_typed_flag=False)  # a TensorRT where strong typing is all there is
    build(trt, "fp16")
    assert trt.seen["network"].flags == 0


def test_build_engine_reuses_a_previous_timing_cache() -> None:
    trt = fake_trt(11)
    _, timings = build(trt, "fp32", timing_cache=b"old timings")
    assert [cache.data for cache in trt.seen["config"].caches] == [b"old timings"]
    assert timings == b"timings after old timings"


def test_parse_errors_become_one_line() -> None:
    errors = (
        ("/voxel_encoder/Foo", "Foo", "No importer registered\nfor op: Foo"),
        ("/head/Bar", "Bar", "unsupported\tdtype"),
    )
    with pytest.raises(StageError) as error:
        build(fake_trt(11, parse_errors=errors), "fp32")
    message = str(error.value)
    assert "\n" not in message and "\t" not in message
    assert message.startswith("deploy/end2end.onnx: TensorRT's ONNX parser rejects the graph: ")
    assert "node /voxel_encoder/Foo (Foo): No importer registered for op: Foo; node /head/Bar (Bar)" in message


def test_a_failed_build_is_a_stage_error() -> None:
    with pytest.raises(StageError, match="could not build the fp16 engine") as error:
        build(fake_trt(10, built=None), "fp16")
    assert "\n" not in str(error.value)


def test_network_inputs_must_match_the_profiles() -> None:
    with pytest.raises(StageError, match=r"inputs \['coors', 'voxels'\] but the optimization profile covers"):
        build(fake_trt(11, network_inputs=("voxels", "coors")), "fp32")


# --- int8 calibration frames (TensorRT 10) ---


def frame(count: int) -> dict[str, np.ndarray]:
    return {
        "voxels": np.arange(count * 32 * 4, dtype=np.float64).reshape(count, 32, 4),
        "num_points": np.arange(1, count + 1, dtype=np.int64),
        "coors": np.stack([np.zeros(count), np.zeros(count), np.arange(count), np.arange(count)], 1),
    }


def test_fit_voxel_count_repeats_or_drops_whole_voxels() -> None:
    grown = engine.fit_voxel_count(frame(3), 7)
    assert grown["num_points"].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert grown["voxels"].shape == (7, 32, 4) and grown["voxels"].dtype == np.float32
    assert grown["coors"].dtype == np.int32 and grown["num_points"].dtype == np.int32
    np.testing.assert_array_equal(grown["voxels"][3], grown["voxels"][0])
    assert engine.fit_voxel_count(frame(10), 4)["coors"][:, 3].tolist() == [0, 1, 2, 3]
    with pytest.raises(StageError, match="no voxels"):
        engine.fit_voxel_count(frame(0), 4)


def test_calibrator_feeds_frames_at_the_opt_shape_and_keeps_its_cache() -> None:
    calibrator = engine.voxel_calibrator(fake_trt(10), [frame(3), frame(20)], PROFILES, device="cpu")
    assert calibrator.get_batch_size() == 1 and calibrator.read_calibration_cache() is None
    for _ in range(2):
        pointers = calibrator.get_batch(["coors", "voxels", "num_points"])
        assert pointers == [t.data_ptr() for t in calibrator.batch]
        assert [tuple(t.shape) for t in calibrator.batch] == [(8, 4), (8, 32, 4), (8,)]
        assert [t.dtype for t in calibrator.batch] == [torch.int32, torch.float32, torch.int32]
    assert calibrator.get_batch(["voxels"]) is None
    calibrator.write_calibration_cache(memoryview(b"scales"))
    assert calibrator.read_calibration_cache() == b"scales"


# --- require_tensorrt ---


def test_require_tensorrt_without_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    with pytest.raises(StageError) as error:
        engine.require_tensorrt("tensorrt-fp16")
    message = str(error.value)
    assert "\n" not in message and message.startswith("deploy target tensorrt-fp16: TensorRT is not installed")
    assert "`pip install tensorrt-cu12`" in message and "remove tensorrt-fp16 from deploy.targets" in message


def fake_module(version: str) -> types.ModuleType:
    module = types.ModuleType("tensorrt")
    module.__version__ = version  # type: ignore[attr-defined]
    return module


def test_require_tensorrt_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_module("10.9.0.34"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StageError, match="torch sees no CUDA GPU") as error:
        engine.require_tensorrt("tensorrt-fp32")
    assert "\n" not in str(error.value) and "`pip install tensorrt-cu12`" in str(error.value)


def test_require_tensorrt_before_10(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_module("9.3.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(StageError, match=r"TensorRT 9\.3\.0 is too old.*TensorRT >= 10.*pip install -U tensorrt-cu12"):
        engine.require_tensorrt("tensorrt-int8")


def test_require_tensorrt_returns_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_module("11.4.0")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert engine.require_tensorrt("tensorrt-fp16") is module


# --- fp16 ONNX ---


def test_fp16_onnx_keeps_float32_io_and_runs(tmp_path: Path) -> None:
    """A linear layer scaled by an int count: its Cast to float is the converter's trap."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Cast", ["n"], ["n_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["n_f"], ["n_col"], axes=[1]),
        helper.make_node("Mul", ["r", "n_col"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("n", TensorProto.INT32, ["N"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=weights,
    )
    src, dst = tmp_path / "end2end.onnx", tmp_path / "end2end.fp16.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(src))

    engine.fp16_onnx(src, dst)
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)  # fails if a Cast still says float32
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT, TensorProto.INT32]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT]
    assert {init.data_type for init in model.graph.initializer} == {TensorProto.FLOAT16}
    assert trt_readiness(model, {"x": ((1, 4), (8, 4), (64, 4)), "n": ((1,), (8,), (64,))})["ready"]

    import onnxruntime as ort

    feeds = {"x": rng.standard_normal((5, 4)).astype(np.float32), "n": np.arange(1, 6, dtype=np.int32)}
    want = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)


# --- running an engine under mmdeploy's backend model ---


def test_backend_model_swap_builds_our_wrapper_and_restores_mmdeploys(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmdeploy.backend.base import get_backend_manager
    from mmdeploy.backend.tensorrt.backend_manager import TensorRTManager

    original = TensorRTManager.__dict__["build_wrapper"]
    built = []
    monkeypatch.setattr(engine, "TensorRTWrapper", lambda *args: built.append(args) or "our wrapper")
    with engine.tensorrt_backend_model():
        manager = get_backend_manager("tensorrt")  # what BaseBackendModel._build_wrapper asks
        wrapper = manager.build_wrapper(["work/end2end.engine"], "cuda:0", ["voxels"], ["cls_score0"], None)
    assert wrapper == "our wrapper" and built == [(Path("work/end2end.engine"), ["cls_score0"], "cuda:0")]
    assert TensorRTManager.__dict__["build_wrapper"] is original
    with pytest.raises(RuntimeError), engine.tensorrt_backend_model():
        raise RuntimeError("a failed evaluation")
    assert TensorRTManager.__dict__["build_wrapper"] is original


def test_mmdeploy_tensorrt_import_does_not_load_its_tensorrt_8_plugins() -> None:
    """With a `tensorrt` importable, mmdeploy's tensorrt package imports its TensorRT 8 utils; that
    and our wrapper swap must not load libmmdeploy_tensorrt_ops.so."""
    script = textwrap.dedent("""
        import ctypes, importlib.machinery, sys, types
        trt = types.ModuleType("tensorrt")
        trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
        trt.__version__ = "10.9.0"
        trt.Logger = type("Logger", (), {"Severity": int, "ERROR": 1})
        trt.ICudaEngine = trt.IGpuAllocator = trt.DataType = trt.TensorLocation = object
        sys.modules["tensorrt"] = trt
        loaded = []
        real_cdll = ctypes.CDLL
        ctypes.CDLL = lambda name, *a, **k: loaded.append(str(name)) or real_cdll(name, *a, **k)
        import mmdeploy.backend.tensorrt as backend
        from mmloop.deploy.tensorrt.engine import tensorrt_backend_model
        assert backend.is_available() and hasattr(backend, "from_onnx"), "mmdeploy saw no tensorrt"
        with tensorrt_backend_model():
            pass
        maps = open("/proc/self/maps").read()
        print("plugins", [n for n in loaded if "tensorrt_ops" in n], "tensorrt_ops" in maps)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "plugins [] False"


def fake_runtime_trt(record: dict[str, Any]) -> types.ModuleType:
    """A `tensorrt` whose Runtime loads b"engine" as voxels/num_points/coors -> cls_score0."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.9.0"  # type: ignore[attr-defined]
    for name in ("float32", "float16", "int32", "int64", "int8", "bool"):
        setattr(trt, name, f"DataType.{name}")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")  # type: ignore[attr-defined]
    logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, severity: None})
    trt.Logger = logger  # type: ignore[attr-defined]
    dtypes = {"voxels": trt.float32, "num_points": trt.int32, "coors": trt.int32, "cls_score0": trt.float32}

    class Context:
        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            record.setdefault("shapes", {})[name] = shape
            return shape[0] <= 16

        def set_tensor_address(self, name: str, address: int) -> None:
            record.setdefault("addresses", {})[name] = address

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (1, 18, 4, 4)

        def execute_async_v3(self, stream: int) -> bool:
            record["stream"] = stream
            return True

    class Engine:
        num_io_tensors = 4

        def get_tensor_name(self, index: int) -> str:
            return list(dtypes)[index]

        def get_tensor_mode(self, name: str) -> str:
            return "out" if name == "cls_score0" else "in"

        def get_tensor_dtype(self, name: str) -> str:
            return dtypes[name]

        def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
            return [(1,), (8,), (16,)]

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            return Engine() if data == b"engine" else None

    trt.Runtime = Runtime  # type: ignore[attr-defined]
    return trt


def test_wrapper_runs_an_engine_by_tensor_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    record: dict[str, Any] = {}
    monkeypatch.setitem(sys.modules, "tensorrt", fake_runtime_trt(record))
    (tmp_path / "end2end.engine").write_bytes(b"engine")
    wrapper = engine.TensorRTWrapper(tmp_path / "end2end.engine", None, device="cpu")
    assert wrapper.output_names == ["cls_score0"]
    voxels = torch.rand(5, 32, 4)
    num_points = torch.ones(5, dtype=torch.int32)
    coors = torch.zeros(5, 4, dtype=torch.int64)  # converted to the engine's int32
    outputs = wrapper({"voxels": voxels, "num_points": num_points, "coors": coors})
    assert record["shapes"] == {"voxels": (5, 32, 4), "num_points": (5,), "coors": (5, 4)}
    assert record["addresses"]["voxels"] == voxels.data_ptr()
    assert record["addresses"]["num_points"] == num_points.data_ptr()
    assert list(outputs) == ["cls_score0"] and outputs["cls_score0"].shape == (1, 18, 4, 4)
    assert outputs["cls_score0"].dtype == torch.float32
    assert record["addresses"]["cls_score0"] == outputs["cls_score0"].data_ptr() and record["stream"] == 0

    with pytest.raises(StageError, match=r"voxels has shape \(17, 32, 4\), outside the engine's profile"):
        wrapper({"voxels": torch.rand(17, 32, 4), "num_points": num_points, "coors": coors})
    (tmp_path / "other.engine").write_bytes(b"not an engine")
    with pytest.raises(StageError, match="cannot load this engine"):
        engine.TensorRTWrapper(tmp_path / "other.engine")
