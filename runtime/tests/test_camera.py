"""The runtime's 2D path (mmloop_runtime.camera) against cv2, mmcv, mmdet and mmdeploy, step by step
and whole, on the real KITTI frames.

The reference libraries are imported here; the runtime itself must not import them
(`test_image_prediction_imports_no_torch_or_opencv`). The whole-model tests use a YOLOX-nano
exported by mmdeploy with seeded random weights whose class and objectness priors are raised, so
every frame gives NMS hundreds of candidates (tests/unit/camera/random_model.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO

if str(REPO) not in sys.path:  # tests.unit.camera.random_model: the stand-in config, the random weights
    sys.path.append(str(REPO))

from mmloop_runtime.camera import (  # noqa: E402
    ImageDetector,
    load_image_manifest,
    manifest_from_dict,
    preprocess,
    read_image,
    rescaled_size,
    resize_bilinear,
)


def real_images(kitti_real: Path) -> list[Path]:
    return sorted((kitti_real / "training" / "image_2").glob("*.png"))


def manifest_data(model_cfg: Any) -> dict[str, Any]:
    from mmloop.camera.deploy import deploy_config, input_size, runtime_manifest
    from mmloop.deploy.target import graph_io

    return runtime_manifest(model_cfg, graph_io(deploy_config("onnxruntime", 13, input_size(model_cfg))))


@pytest.fixture(scope="module")
def coco_real(tmp_path_factory: pytest.TempPathFactory, kitti_real: Path) -> Path:
    """The six real frames (train and val lists) in one COCO file."""
    from tests.unit.camera.random_model import write_coco

    folder = tmp_path_factory.mktemp("coco-real")
    files = [write_coco(kitti_real, split, folder / f"{split}.json") for split in ("train", "val")]
    parts = [json.loads(path.read_text()) for path in files]
    offset = len(parts[0]["images"])
    for image in parts[1]["images"]:
        image["id"] += offset
    for annotation in parts[1]["annotations"]:
        annotation["image_id"] += offset
        annotation["id"] += len(parts[0]["annotations"])
    merged = {
        "images": parts[0]["images"] + parts[1]["images"],
        "annotations": parts[0]["annotations"] + parts[1]["annotations"],
        "categories": parts[0]["categories"],
    }
    (folder / "all.json").write_text(json.dumps(merged))
    return folder / "all.json"


@pytest.fixture(scope="module")
def camera_model(tmp_path_factory: pytest.TempPathFactory, kitti_real: Path, coco_real: Path) -> Path:
    """export_2d's deploy/onnx layout (end2end.onnx, manifest.json, deploy.py, model.py) for a random YOLOX."""
    from mmloop.camera.deploy import deploy_config, export_model_folder, input_size
    from mmloop.core.device import select_device
    from tests.unit.camera.random_model import camera_config, random_checkpoint

    select_device("cpu")
    folder = tmp_path_factory.mktemp("camera-model")
    model_cfg = camera_config(coco_real)
    checkpoint = random_checkpoint(model_cfg, folder / "random.pth", real_images(kitti_real)[0])
    deploy_cfg = deploy_config("onnxruntime", 13, input_size(model_cfg))
    export_model_folder(real_images(kitti_real)[0], folder, deploy_cfg, model_cfg, checkpoint)
    return folder


# --- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, target",
    [
        ((375, 1242), (192, 636)),
        ((375, 1242), (192, 640)),
        ((370, 1224), (188, 622)),
        ((37, 53), (120, 97)),
        ((9, 7), (3, 5)),
    ],
)
def test_resize_is_cv2_inter_linear_bit_for_bit(source: tuple[int, int], target: tuple[int, int]) -> None:
    """Random pixels down and up, odd sizes included: every value as cv2 computes it."""
    import cv2

    image = np.random.default_rng(source[0] * target[1]).integers(0, 256, (*source, 3), dtype=np.uint8)
    expected = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_LINEAR)
    got = resize_bilinear(image, target[1], target[0])
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"{int((got != expected).sum())} of {got.size} values differ"


def test_resize_is_cv2s_at_random_sizes() -> None:
    import cv2

    rng = np.random.default_rng(7)
    for _ in range(100):
        (rows, cols), (height, width) = rng.integers(1, 300, 2), rng.integers(1, 500, 2)
        image = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
        expected = cv2.resize(image, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(resize_bilinear(image, int(width), int(height)), expected), (rows, cols, height, width)


@pytest.mark.fixtures
def test_resize_of_the_real_frames_is_cv2s(kitti_real: Path) -> None:
    import cv2

    for path in real_images(kitti_real):
        image = read_image(path)
        width, height = rescaled_size(image.shape[1], image.shape[0], (640, 192))
        assert np.array_equal(
            resize_bilinear(image, width, height), cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        ), path.name


@pytest.mark.parametrize("size", [(1242, 375), (1224, 370), (1241, 376), (500, 500), (100, 900)])
@pytest.mark.parametrize("scale", [(640, 192), (416, 416), (1333, 800)])
def test_rescaled_size_is_mmcvs(size: tuple[int, int], scale: tuple[int, int]) -> None:
    import mmcv

    assert rescaled_size(*size, scale) == mmcv.rescale_size(size, scale)


def test_postprocess_drops_the_padding_rows_and_undoes_the_resize() -> None:
    """As mmdeploy's End2EndModel: rows of score 0 pad the graph's output; boxes go back to the image."""
    from mmloop_runtime.camera import postprocess

    dets = np.array([[[10, 20, 30, 40, 0.9], [0, 0, 64, 19.2, 0.2], [0, 0, 0, 0, 0.0]]], np.float32)
    found = postprocess(dets, np.array([[2, 0, 0]]), (0.512, 0.512), 0.0)
    assert found.labels.tolist() == [2, 0] and found.scores.tolist() == pytest.approx([0.9, 0.2])
    assert found.boxes[1].tolist() == pytest.approx([0, 0, 125, 37.5])
    assert postprocess(dets, np.array([[2, 0, 0]]), (0.5, 0.5), 0.5).labels.tolist() == [2]


@pytest.mark.fixtures
def test_preprocess_is_mmdets_test_pipeline_on_real_frames(kitti_real: Path) -> None:
    """The graph's input tensor and scale_factor, bit for bit as mmdet's pipeline and data preprocessor make them."""
    import torch
    from mmcv.transforms import Compose
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.dataset import pseudo_collate

    from tests.unit.camera.random_model import camera_config

    register_all_modules()
    model_cfg = camera_config()
    manifest = manifest_from_dict(manifest_data(model_cfg))
    pipeline = Compose([step for step in model_cfg.test_pipeline if step["type"] != "LoadAnnotations"])
    data_preprocessor = MODELS.build(model_cfg.model.data_preprocessor)
    for path in real_images(kitti_real):
        data = data_preprocessor(pseudo_collate([pipeline({"img_path": str(path), "img_id": 0})]), False)
        tensor, factors = preprocess(read_image(path), manifest)
        assert tensor.shape == (1, 3, 192, 640)
        assert torch.equal(torch.from_numpy(tensor), data["inputs"]), path.name
        assert factors == tuple(data["data_samples"][0].scale_factor)


def test_a_lidar_manifest_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "mmloop-runtime/1"}))
    with pytest.raises(ValueError, match="a LiDAR model: use mmloop_runtime.Detector"):
        load_image_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image_manifest(tmp_path / "missing")


# --- the whole model ----------------------------------------------------------------------------


@pytest.mark.fixtures
def test_image_detector_gives_mmdeploys_boxes_on_the_real_frames(camera_model: Path, coco_real: Path) -> None:
    """mmdeploy's backend model (ORTWrapper over the same end2end.onnx, fed by mmdet's pipeline) and
    the runtime (Pillow and numpy), box for box on each of the six real frames."""
    from mmdeploy.apis.utils import build_task_processor
    from mmengine.config import Config

    from mmloop.camera.deploy import split_loader
    from mmloop.camera.parity import as_detections
    from mmloop.deploy.parity import detection_agreement

    model_cfg = Config.fromfile(str(camera_model / "model.py"))
    deploy_cfg = Config.fromfile(str(camera_model / "deploy.py"))
    deployed = build_task_processor(model_cfg, deploy_cfg, "cpu").build_backend_model(
        [str(camera_model / "end2end.onnx")]
    )
    detector = ImageDetector(camera_model)
    expected, got = [], []
    for data in split_loader(model_cfg, coco_real):
        expected.append(as_detections(deployed.test_step(data)[0].pred_instances))
        got.append(detector.predict(data["data_samples"][0].img_path))
    agreement = detection_agreement(expected, got, 1e-4)
    assert len(expected) == 6
    assert agreement["boxes"] >= 6 * 20, "the comparison must not be vacuous: random weights should give boxes"
    assert agreement["frames_agreeing"] == 6, agreement
    assert agreement["box_max_abs_diff"] == 0.0 and agreement["score_max_abs_diff"] == 0.0
    for found in got:  # boxes in the original image's pixels (1242x375, give or take)
        assert found.boxes.shape[1] == 4 and found.boxes[:, 2:].max() > 640


@pytest.mark.fixtures
def test_score_threshold_cuts_boxes(camera_model: Path, kitti_real: Path) -> None:
    image = real_images(kitti_real)[0]
    everything = ImageDetector(camera_model).predict(image)
    confident = ImageDetector(camera_model, score_thr=float(np.median(everything.scores))).predict(image)
    assert 0 < len(confident.scores) < len(everything.scores)
    assert confident.scores.min() >= np.median(everything.scores)


@pytest.mark.fixtures
def test_image_prediction_imports_no_torch_or_opencv(camera_model: Path, kitti_real: Path) -> None:
    code = (
        "import sys; from mmloop_runtime.camera import ImageDetector; "
        f"found = ImageDetector({str(camera_model)!r}).predict({str(real_images(kitti_real)[0])!r}); "
        "heavy = sorted(m for m in ('torch', 'cv2', 'mmcv', 'mmdet', 'mmengine', 'mmdeploy') if m in sys.modules); "
        "print(len(found.labels), heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, heavy = result.stdout.strip().split(" ", 1)
    assert int(count) > 0 and heavy == "[]"


@pytest.mark.fixtures
def test_cli_predict_image_writes_json_and_kitti_lines(camera_model: Path, kitti_real: Path, tmp_path: Path) -> None:
    from mmloop_runtime.cli import main

    images = kitti_real / "training" / "image_2"
    assert (
        main(
            ["predict-image", str(images), "--model", str(camera_model), "--out", str(tmp_path), "--score-thr", "0.012"]
        )
        == 0
    )
    for path in real_images(kitti_real):
        report = json.loads((tmp_path / f"{path.stem}.json").read_text())
        lines = (tmp_path / f"{path.stem}.txt").read_text().splitlines()
        assert len(lines) == len(report["detections"]) > 0
        assert all(
            item["score"] >= 0.012 and item["label"] in ("Car", "Pedestrian", "Cyclist")
            for item in report["detections"]
        )
        assert lines[0].split()[0] == report["detections"][0]["label"] and len(lines[0].split()) == 16
    assert main(["predict-image", str(tmp_path / "none"), "--model", str(camera_model)]) == 2
