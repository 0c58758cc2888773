"""Deploy targets without the pipeline: our deploy configs as mmdeploy reads them, the graph's names,
the backends registry and target names, where a target's files go, and the TensorRT backend's
deploy config (its profile in mmdeploy's `model_inputs` form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError
from mmloop.deploy.backends import Target, backends, known_targets, parse_target
from mmloop.deploy.target import GraphIO, check_opset, graph_io, load_deploy_config
from tests.helpers import REPO


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
    # the graph's names come from the deploy config, for every backend alike
    assert graph_io(cfg) == GraphIO(["voxels", "num_points", "coors"], ["cls_score0", "bbox_pred0", "dir_cls_pred0"])
    from mmdeploy.utils import get_backend, get_codebase, get_task_type

    assert get_backend(cfg).value == backend
    assert get_codebase(cfg).value == "mmdet3d" and get_task_type(cfg).value == "VoxelDetection"


def test_missing_deploy_config_says_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match=r"configs/deploy/voxel-detection_onnxruntime.py: not found; restore"):
        load_deploy_config("onnxruntime", 13)


def test_tensorrt_profile_becomes_mmdeploy_model_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmloop.deploy.backends.tensorrt import BACKEND
    from mmloop.deploy.tensorrt.readiness import input_profiles

    monkeypatch.chdir(REPO)
    profiles = input_profiles({"min": 10, "opt": 20, "max": 40}, max_points=32, point_features=4)
    params = {"tensorrt": {"workspace_mib": 512}}
    cfg = BACKEND.deploy_config(load_deploy_config("tensorrt", 13), "fp16", params, profiles)
    inputs = cfg.backend_config.model_inputs[0]["input_shapes"]
    assert inputs["voxels"] == {"min_shape": [10, 32, 4], "opt_shape": [20, 32, 4], "max_shape": [40, 32, 4]}
    assert inputs["num_points"]["max_shape"] == [40]
    assert inputs["coors"]["opt_shape"] == [20, 4]
    common = cfg.backend_config.common_config
    assert common.max_workspace_size == 512 << 20 and common.fp16_mode and not common.int8_mode
    int8 = BACKEND.deploy_config(load_deploy_config("tensorrt", 13), "int8", params, profiles)
    assert int8.backend_config.common_config.int8_mode and not int8.backend_config.common_config.fp16_mode


def test_onnxruntime_deploy_config_is_the_shipped_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmloop.deploy.backends.onnxruntime import BACKEND

    monkeypatch.chdir(REPO)
    shipped = load_deploy_config("onnxruntime", 13)
    assert BACKEND.deploy_config(load_deploy_config("onnxruntime", 13), "int8", {}, {}).to_dict() == shipped.to_dict()


def test_backends_registry() -> None:
    """One module per backend under mmloop/deploy/backends, each with its BACKEND."""
    registry = backends()
    assert sorted(registry) == ["onnxruntime", "openvino", "tensorrt"]
    assert registry["onnxruntime"].precisions == ("fp32", "int8") and registry["onnxruntime"].device == "cpu"
    assert registry["openvino"].precisions == ("fp32", "int8") and registry["openvino"].device == "cpu"
    assert registry["tensorrt"].precisions == ("fp32", "fp16", "int8") and registry["tensorrt"].device == "cuda"


def test_targets_parse_and_name_their_files() -> None:
    assert known_targets() == [
        "onnxruntime-fp32",
        "onnxruntime-int8",
        "openvino-fp32",
        "openvino-int8",
        "tensorrt-fp32",
        "tensorrt-fp16",
        "tensorrt-int8",
    ]
    paths = load_paths(REPO / "params.yaml")
    target = parse_target("tensorrt-fp16")
    assert target == Target(backends()["tensorrt"], "fp16") and target.name == "tensorrt-fp16"
    assert paths.deployed_dir(target.name) == Path("deploy/tensorrt-fp16")
    assert target.backend.backend_file == "end2end.engine"
    assert parse_target("onnxruntime-int8").backend.backend_file == "end2end.onnx"
    assert parse_target("openvino-int8").backend.backend_file == "end2end.xml"
    assert paths.deploy_report(parse_target("onnxruntime-int8").name) == Path("metrics/deploy/onnxruntime-int8.json")
    for bad in ("onnxruntime-fp16", "tensorrt", "openvino-fp16", ""):
        with pytest.raises(StageError, match="deploy.targets"):
            parse_target(bad)
    for bad in (10, 21, "13", True):
        with pytest.raises(StageError, match="deploy.opset"):
            check_opset(bad)
    assert check_opset(13) == 13
