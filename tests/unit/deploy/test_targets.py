"""Export/deploy logic without the pipeline: the exporter shim, deploy configs and targets, int8
quantization of a small graph, the metrics arithmetic, and the TensorRT stage's fast failure."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from stages.common.deploy_target import (Target, check_opset, known_targets, load_deploy_config, parse_target,
                                         tensorrt_model_inputs, voxel_layout)
from stages.common.stage import StageError


def test_shim_makes_torchscript_the_default_and_restores_export(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.onnx

    from stages.common.onnx_export import torchscript_onnx_exporter

    calls: list[bool] = []

    def fake_export(model: object, args: object, f: object, *, dynamo: bool = True) -> None:
        calls.append(dynamo)

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    with torchscript_onnx_exporter():
        torch.onnx.export(None, (), "x.onnx")              # how mmdeploy calls it
        torch.onnx.export(None, (), "x.onnx", dynamo=True)  # an explicit choice is kept
    torch.onnx.export(None, (), "x.onnx")
    assert calls == [False, True, True]
    assert torch.onnx.export is fake_export


def test_shim_exports_a_real_module_through_torchscript(tmp_path: Path) -> None:
    import onnx
    import torch

    from stages.common.onnx_export import torchscript_onnx_exporter

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    with torchscript_onnx_exporter():
        torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(tmp_path / "m.onnx"), opset_version=13,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    graph = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    assert [node.op_type for node in graph.graph.node] == ["Conv", "Relu"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_deploy_configs_are_mmdeploy_voxel_detection_configs(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    cfg = load_deploy_config(backend, 15)
    assert cfg.codebase_config == {"type": "mmdet3d", "task": "VoxelDetection", "model_type": "end2end"}
    assert cfg.backend_config.type == backend
    assert cfg.onnx_config.opset_version == 15
    assert cfg.onnx_config.input_names == ["voxels", "num_points", "coors"]
    assert cfg.onnx_config.output_names == ["cls_score0", "bbox_pred0", "dir_cls_pred0"]
    assert all(axes == {0: "voxels_num"} for axes in cfg.onnx_config.dynamic_axes.values())
    from mmdeploy.utils import get_backend, get_codebase, get_task_type

    assert get_backend(cfg).value == backend
    assert get_codebase(cfg).value == "mmdet3d" and get_task_type(cfg).value == "VoxelDetection"


def test_tensorrt_profile_becomes_mmdeploy_model_inputs() -> None:
    from stages.common.tensorrt_support import input_profiles

    profiles = input_profiles({"min": 10, "opt": 20, "max": 40}, max_points=32, point_features=4)
    inputs = tensorrt_model_inputs(profiles)[0]["input_shapes"]
    assert inputs["voxels"] == {"min_shape": [10, 32, 4], "opt_shape": [20, 32, 4], "max_shape": [40, 32, 4]}
    assert inputs["num_points"]["max_shape"] == [40]
    assert inputs["coors"]["opt_shape"] == [20, 4]


def test_voxel_layout_reads_the_voxelizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    from stages.common.model_config import load_config

    assert voxel_layout(load_config("configs/models/pointpillars_small-sample.py")) == (32, 4, 20000)
    assert voxel_layout(load_config("configs/models/pointpillars_kitti-3class.py")) == (32, 4, 40000)


def test_targets_parse_and_name_their_files() -> None:
    assert known_targets() == ["onnxruntime-fp32", "onnxruntime-int8", "tensorrt-fp32", "tensorrt-fp16",
                               "tensorrt-int8"]
    target = parse_target("tensorrt-fp16")
    assert target == Target("tensorrt", "fp16") and target.name == "tensorrt-fp16"
    assert target.out_dir == Path("deploy/tensorrt-fp16") and target.backend_file == "end2end.engine"
    assert parse_target("onnxruntime-int8").metrics == Path("metrics/deploy/onnxruntime-int8.json")
    for bad in ("onnxruntime-fp16", "tensorrt", "openvino-fp32", ""):
        with pytest.raises(StageError, match="deploy.targets"):
            parse_target(bad)
    for bad in (10, 21, "13", True):
        with pytest.raises(StageError, match="deploy.opset"):
            check_opset(bad)
    assert check_opset(13) == 13


def test_tolerance_per_precision() -> None:
    from stages.deploy import check_tolerance

    tolerance = {"fp32": {"map_delta": 0.1, "max_abs_diff": 1e-4}, "int8": {"map_delta": 1.0, "max_abs_diff": None}}
    assert check_tolerance(Target("onnxruntime", "fp32"), tolerance) == (0.1, 1e-4)
    assert check_tolerance(Target("onnxruntime", "int8"), tolerance) == (1.0, None)
    with pytest.raises(StageError, match="deploy.tolerance.fp16.map_delta"):
        check_tolerance(Target("tensorrt", "fp16"), tolerance)


def small_conv_graph(path: Path, opset: int = 13) -> None:
    """x -> Conv -> Relu -> Conv (named like the exported head) -> y, with fixed random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
               for name, shape in (("w1", (8, 4, 3, 3)), ("b1", (8,)), ("w2", (6, 8, 1, 1)), ("b2", (6,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="/backbone/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="/backbone/Relu"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="/conv_cls/Conv")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6, 8, 8])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))


def frames(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(size=(1, 4, 8, 8)).astype(np.float32)} for _ in range(count)]


def test_int8_quantization_is_calibrated_and_close(tmp_path: Path) -> None:
    import onnxruntime as ort

    from stages.common.quantize import quantize_int8

    small_conv_graph(tmp_path / "fp32.onnx")
    report = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", frames(16))
    assert report == {"calibration_frames": 16, "int8_layers": {"Conv": 2}, "layers": {"Conv": 2}}
    kept = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "kept.onnx", frames(16), keep_float=["/conv_cls/"])
    assert kept["int8_layers"] == {"Conv": 1}
    x = frames(1)[0]
    y32, y8 = (ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]).run(None, x)[0]
               for name in ("fp32.onnx", "int8.onnx"))
    assert 0 < np.abs(y8 - y32).max() < 0.1 * np.abs(y32).max()  # int8, but close


def test_int8_for_tensorrt_is_symmetric_with_float_biases(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from stages.common.quantize import quantize_int8

    small_conv_graph(tmp_path / "fp32.onnx")
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", frames(8), symmetric=True)
    graph = onnx.load(str(tmp_path / "qdq.onnx")).graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    zero_points = [constants[node.input[2]] for node in graph.node
                   if node.op_type == "QuantizeLinear" and len(node.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert not any(value.dtype == np.int32 for value in constants.values())  # biases stay float


def test_int8_needs_opset_13_and_frames(tmp_path: Path) -> None:
    from stages.common.quantize import quantize_int8

    small_conv_graph(tmp_path / "old.onnx", opset=11)
    with pytest.raises(StageError, match="deploy.opset to 13"):
        quantize_int8(tmp_path / "old.onnx", tmp_path / "int8.onnx", frames(2))
    small_conv_graph(tmp_path / "fp32.onnx")
    with pytest.raises(StageError, match="calibration_frames"):
        quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", [])


def kitti_metrics(map_3d: float, map_bev: float, car: float) -> dict[str, float]:
    from stages.common.kitti_metric import PREFIX

    metrics = {PREFIX + "Overall_3D_AP40_moderate": map_3d, PREFIX + "Overall_BEV_AP40_moderate": map_bev}
    for kind in ("3D", "BEV"):
        for level in ("easy", "moderate", "hard"):
            metrics[PREFIX + f"Car_{kind}_AP40_{level}_strict"] = car
    return metrics


def test_comparison_report_arithmetic() -> None:
    from stages.common.deployed_eval import Comparison, Side, comparison_report

    comparison = Comparison(
        frames=3,
        pytorch=Side(kitti_metrics(30.0, 35.0, 70.0), [0.040, 0.050, 0.060]),
        deployed=Side(kitti_metrics(29.5, 35.25, 69.0), [0.010, 0.030, 0.020]),
        max_abs_diff={"cls_score0": 2e-5, "bbox_pred0": 7e-5, "dir_cls_pred0": 1e-6})
    report = comparison_report(comparison, ["Car"])
    assert report["mAP"] == 29.5 and report["mAP_pytorch"] == 30.0 and report["mAP_delta"] == -0.5
    assert report["mAP_bev_delta"] == 0.25
    assert report["max_abs_diff"] == 7e-5
    assert report["latency_ms"] == 20.0 and report["latency_ms_pytorch"] == 50.0 and report["latency_ratio"] == 0.4
    assert report["ap_3d_moderate"] == {"Car": 69.0}


def run_deploy(target: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stages.deploy", "--target", target], cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120)


def test_tensorrt_target_without_tensorrt_fails_at_once_in_one_line(tmp_path: Path) -> None:
    """No TensorRT here (CI, this CPU machine): one line saying what to install, nothing written.
    (tests/test_tensorrt.py covers the no-GPU and too-old-TensorRT lines with fake modules.)"""
    pytest.importorskip("torch")
    if subprocess.run([sys.executable, "-c", "import tensorrt"], capture_output=True).returncode == 0:
        pytest.skip("TensorRT is installed here")
    start = time.monotonic()
    result = run_deploy("tensorrt-fp16", tmp_path)  # no params.yaml, no model: it must not get that far
    assert time.monotonic() - start < 60
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mmloop deploy: error: deploy target tensorrt-fp16: TensorRT is not installed")
    assert "pip install tensorrt-cu12" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_unknown_target_fails_in_one_line(tmp_path: Path) -> None:
    result = run_deploy("onnxruntime-fp16", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mmloop deploy: error: params.yaml: deploy.targets has 'onnxruntime-fp16'; use some of "
        "onnxruntime-fp32, onnxruntime-int8, tensorrt-fp32, tensorrt-fp16, tensorrt-int8"]


def test_detection_agreement_and_the_runtime_gate() -> None:
    from mmloop_runtime import Detections
    from stages.common.deployed_eval import detection_agreement
    from stages.deploy import check_runtime, runtime_tolerance

    def frame(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Detections:
        return Detections(np.array(boxes, np.float32).reshape(-1, 7), np.array(scores, np.float32), np.array(labels))

    box = [10.0, 2.0, -1.0, 4.0, 1.6, 1.5, 0.3]
    other = [20.0, -2.0, -1.0, 0.8, 0.6, 1.7, 1.2]
    mmdeploy = [frame([box, other], [0.9, 0.5], [2, 0]), frame([box], [0.9], [2]), frame([], [], []),
                frame([box], [0.7], [2])]
    shifted = [v + (5e-4 if i == 0 else 0) for i, v in enumerate(box)]
    runtime = [frame([other, shifted], [0.5, 0.9], [0, 2]),  # other order, within 1e-3: agrees
               frame([box], [0.9], [1]),                     # another label
               frame([], [], []),                            # nothing found by either: agrees
               frame([[v + 0.01 for v in box]], [0.7], [2])]  # a box 1 cm off
    agreement = detection_agreement(mmdeploy, runtime, 1e-3)
    assert agreement["frames_agreeing"] == 2 and agreement["frames_disagreeing"] == [1, 3]
    assert agreement["boxes"] == 4 and agreement["box_max_abs_diff"] == pytest.approx(0.01, abs=1e-6)
    target = parse_target("onnxruntime-int8")
    report = {"frames": 4, "runtime_mAP": 30.0, "runtime_mAP_delta": 0.0, "runtime_frames_disagreeing": [1, 3]}
    with pytest.raises(StageError, match=r"boxes differ from mmdeploy's on 2 of 4 frames \(split indices \[1, 3\]"):
        check_runtime(target, report, 0.1, 1e-3)
    report["runtime_frames_disagreeing"], report["runtime_mAP_delta"] = [], -0.2
    with pytest.raises(StageError, match=r"mAP differs from mmdeploy's by -0.200, over deploy.runtime_tolerance"):
        check_runtime(target, report, 0.1, 1e-3)
    assert runtime_tolerance({"map_delta": 0.1, "box_abs_diff": 1e-3}) == (0.1, 1e-3)
    with pytest.raises(StageError, match=r"deploy.runtime_tolerance needs map_delta and box_abs_diff"):
        runtime_tolerance(None)
