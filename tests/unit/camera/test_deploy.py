"""The camera loop's export and deploy glue (mmloop/camera/deploy.py): the runtime's manifest from the
model config, the deploy configs, and a real export (random weights, the real KITTI frames): NMS in
the graph, TensorRT's parser readiness, and the deployed graph against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmloop.camera import deploy as camera
from mmloop.camera import parity as camera_parity
from mmloop.core.stage import StageError
from tests.unit.camera.random_model import camera_config, random_checkpoint, write_coco


def test_manifest_follows_the_test_pipeline_and_data_preprocessor() -> None:
    pre = camera.preprocess_manifest(camera_config())
    assert pre["scale"] == [640, 192] and pre["keep_ratio"] is True
    assert pre["pad_size"] == [640, 192] and pre["pad_value"] == [114.0, 114.0, 114.0]
    assert pre["mean"] is None and pre["std"] is None and pre["bgr_to_rgb"] is False  # YOLOX takes raw BGR
    assert pre["batch_pad_divisor"] == 32 and pre["channel_order"] == "bgr"
    assert camera.input_size(camera_config()) == (192, 640)
    assert camera.class_names(camera_config()) == ["Car", "Pedestrian", "Cyclist"]


def test_the_manifest_reads_back_in_the_runtime() -> None:
    from mmloop.deploy.target import graph_io
    from mmloop_runtime.camera import manifest_from_dict

    cfg = camera_config()
    manifest = manifest_from_dict(
        camera.runtime_manifest(cfg, graph_io(camera.deploy_config("onnxruntime", 13, (192, 640))))
    )
    assert manifest.inputs == ("input",) and manifest.outputs == ("dets", "labels")
    assert manifest.input_size == (192, 640) and manifest.score_thr == 0.01
    assert manifest.preprocess.pad_size == (640, 192)


def test_a_square_padding_pipeline_is_refused() -> None:
    """mmdet's shipped YOLOX pads to a square: a graph per image size, not the static camera export."""
    cfg = camera_config()
    cfg.test_dataloader.dataset.pipeline[2] = dict(type="Pad", pad_to_square=True, pad_val=dict(img=(114.0,) * 3))
    with pytest.raises(StageError, match="use Pad\\(size=\\(width, height\\)\\)"):
        camera.input_size(cfg)


def test_a_step_the_runtime_cannot_repeat_is_refused() -> None:
    cfg = camera_config()
    cfg.test_dataloader.dataset.pipeline.insert(1, dict(type="RandomFlip", prob=0.5))
    with pytest.raises(StageError, match="RandomFlip"):
        camera.preprocess_manifest(cfg)


def test_classes_must_match_the_head() -> None:
    cfg = camera_config()
    cfg.test_dataloader.dataset.metainfo = dict(classes=("Car",))
    with pytest.raises(StageError, match="head of 3 classes"):
        camera.class_names(cfg)


def test_deploy_configs_are_found_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The camera pipeline runs from pipelines/kitti-camera: the configs come from the package's checkout."""
    from mmloop.deploy.backends.tensorrt import BACKEND

    monkeypatch.chdir(tmp_path)
    cfg = camera.deploy_config("onnxruntime", 15, (192, 640))
    assert cfg.onnx_config.input_shape == [640, 192] and cfg.onnx_config.opset_version == 15
    assert cfg.codebase_config.task == "ObjectDetection" and cfg.backend_config.type == "onnxruntime"
    assert cfg.onnx_config.output_names == ["dets", "labels"]
    profiles = camera.input_profile((96, 320))
    trt = BACKEND.deploy_config(
        camera.deploy_config("tensorrt", 13, (96, 320)), "fp16", {"tensorrt": {"workspace_mib": 64}}, profiles
    )
    shapes = trt.backend_config.model_inputs[0]["input_shapes"]["input"]
    assert shapes == {"min_shape": [1, 3, 96, 320], "opt_shape": [1, 3, 96, 320], "max_shape": [1, 3, 96, 320]}
    assert trt.backend_config.common_config.fp16_mode is True
    with pytest.raises(StageError, match="detection_ncnn.py: not found; restore configs/deploy"):
        camera.deploy_config("ncnn", 13, (192, 640))


def test_metric_summary_is_in_points() -> None:
    metrics = {"coco/bbox_mAP": 0.123, "coco/bbox_mAP_50": 0.5, "coco/bbox_mAP_75": 0.0}
    assert camera.metric_summary(metrics) == {"mAP": 12.3, "mAP_50": 50.0, "mAP_75": 0.0}


# --- a real export ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, kitti_real: Path) -> dict[str, Any]:
    from mmloop.core.device import select_device

    select_device("cpu")
    folder = tmp_path_factory.mktemp("camera-export")
    ann_file = write_coco(kitti_real, "train", folder / "train.json")
    model_cfg = camera_config(ann_file)
    image = camera.first_image(model_cfg, ann_file)
    checkpoint = random_checkpoint(model_cfg, folder / "random.pth", image)
    deploy_cfg = camera.deploy_config("onnxruntime", 13, camera.input_size(model_cfg))
    onnx_file = camera.export_model_folder(image, folder, deploy_cfg, model_cfg, checkpoint)
    return {
        "folder": folder,
        "onnx": onnx_file,
        "ann_file": ann_file,
        "cfg": model_cfg,
        "deploy_cfg": deploy_cfg,
        "checkpoint": checkpoint,
    }


@pytest.mark.fixtures
def test_export_has_a_static_input_and_nms_in_the_graph(exported: dict[str, Any]) -> None:
    import onnx

    from mmloop.deploy.export import graph_report

    report = graph_report(onnx.load(str(exported["onnx"])))
    assert report["inputs"] == [{"name": "input", "dtype": "float", "shape": [1, 3, 192, 640]}]
    assert [output["name"] for output in report["outputs"]] == ["dets", "labels"]
    assert report["outputs"][0]["shape"][2] == 5 and isinstance(report["outputs"][0]["shape"][1], str)
    assert report["op_types"]["NonMaxSuppression"] == 1
    manifest = json.loads((exported["folder"] / "manifest.json").read_text())
    assert manifest["class_names"] == ["Car", "Pedestrian", "Cyclist"] and manifest["input_size"] == [192, 640]


@pytest.mark.fixtures
def test_tensorrt_parser_takes_the_export(exported: dict[str, Any]) -> None:
    """TensorRT readiness on the CPU: ONNX's NonMaxSuppression, no mmdeploy plugin, a static profile."""
    import onnx

    from mmloop.deploy.tensorrt.readiness import blocking, trt_readiness

    readiness = trt_readiness(onnx.load(str(exported["onnx"])), camera.input_profile((192, 640)))
    assert readiness["onnx_checker"] is None
    assert readiness["unsupported_ops"] == [] or readiness["unsupported_ops"] == {}, readiness["unsupported_ops"]
    assert readiness["ready"], blocking(readiness)
    assert readiness["dynamic_dims"] == [] or not readiness["uncovered"]


@pytest.mark.fixtures
def test_the_deployed_graph_matches_pytorch_on_the_real_frames(exported: dict[str, Any]) -> None:
    """The raw head maps (the maps before box decoding and NMS) on the same input tensors, each
    level of each map compared, and both models giving boxes on every frame."""
    model_cfg = exported["cfg"]
    reference = camera.pytorch_model(model_cfg, exported["checkpoint"], "cpu")
    loader = camera.split_loader(model_cfg, exported["ann_file"])
    diffs = camera_parity.map_differences(reference, exported["onnx"], model_cfg, loader, threads=0)
    assert set(diffs) == {f"{name}{level}" for name in ("cls_score", "bbox_pred", "objectness") for level in range(3)}
    assert 0 < max(diffs.values()) < 1e-3, diffs  # logits and offsets of order 1 to 10 (float32 kernels)
    with_boxes = sum(
        len(found.labels) > 0 for found in camera_parity.run_side(reference, loader, exported["ann_file"], 0)[1]
    )
    assert with_boxes == len(loader.dataset) == 4


@pytest.mark.fixtures
def test_calibration_frames_are_the_graphs_input(exported: dict[str, Any]) -> None:
    reference = camera.pytorch_model(exported["cfg"], exported["checkpoint"], "cpu")
    frames = list(camera.calibration_frames(reference, exported["cfg"], exported["ann_file"], 2, "input"))
    assert len(frames) == 2 and frames[0]["input"].shape == (1, 3, 192, 640)
    assert frames[0]["input"].dtype.name == "float32" and frames[0]["input"].max() <= 255
