"""The torch-free runtime (runtime/mmloop_runtime) against mmdet3d and mmdeploy, piece by piece and whole.

mmdet3d/mmcv are the reference here, so these tests import them; the runtime itself must not
(`test_prediction_imports_no_torch`). The whole-model tests use a small PointPillars exported by
mmdeploy with random weights whose class prior is raised, so every frame gives NMS hundreds of
overlapping candidates to sort out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO

SMALL_CONFIG = "configs/models/pointpillars_small-sample.py"
FULL_CONFIG = "configs/models/pointpillars_kitti-3class.py"


def model_config(name: str) -> Any:
    from mmloop.openmmlab.config import load_config

    return load_config(str(REPO / name))


def manifest_data(model_cfg: Any) -> dict[str, Any]:
    """What export writes as manifest.json, with the graph's names from our ONNX Runtime deploy config."""
    from mmloop.deploy.target import graph_io, load_deploy_config
    from mmloop.models.anchor3d import runtime_manifest

    io = graph_io(load_deploy_config("onnxruntime", 13))
    return runtime_manifest(model_cfg, io.inputs, io.outputs)


def fixture_clouds(kitti_real: Path) -> list[Path]:
    return sorted((kitti_real / "training" / "velodyne").glob("*.bin"))


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory, kitti_real: Path) -> Path:
    """deploy/onnx's layout (end2end.onnx, manifest.json, deploy.py, model.py) for a random small model."""
    import torch

    from mmloop.deploy.export import export_model_folder
    from mmloop.deploy.parity import pytorch_model
    from mmloop.deploy.target import load_deploy_config

    folder = tmp_path_factory.mktemp("random-model")
    torch.manual_seed(0)
    model_cfg = model_config(SMALL_CONFIG)
    model = pytorch_model(model_cfg, None, "cpu")
    with torch.no_grad():
        model.bbox_head.conv_cls.bias.fill_(-0.5)  # scores around 0.4: many boxes over score_thr
    checkpoint = folder / "random.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    export_model_folder(
        fixture_clouds(kitti_real)[0], folder, load_deploy_config("onnxruntime", 13), model_cfg, checkpoint
    )
    checkpoint.unlink()
    return folder


# --- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_points, max_voxels", [(32, 20000), (5, 300), (1, 50)])
def test_voxelize_matches_mmdet3d_range_filter_and_mmcv_voxelizer(
    kitti_real: Path, max_points: int, max_voxels: int
) -> None:
    import torch
    from mmcv.ops import Voxelization
    from mmdet3d.datasets.transforms import PointsRangeFilter
    from mmdet3d.structures import LiDARPoints

    from mmloop_runtime.kitti import read_cloud
    from mmloop_runtime.manifest import Voxelizer
    from mmloop_runtime.voxelize import voxelize

    point_cloud_range = [0, -23.04, -3, 46.08, 23.04, 1]
    voxelizer = Voxelizer(tuple(point_cloud_range), (0.32, 0.32, 4), max_points, max_voxels, 4)
    layer = Voxelization([0.32, 0.32, 4], point_cloud_range, max_points, (max_voxels, max_voxels)).eval()
    for cloud in fixture_clouds(kitti_real):
        points = read_cloud(cloud)
        filtered = PointsRangeFilter(point_cloud_range)({"points": LiDARPoints(torch.from_numpy(points), 4)})
        voxels, coors, num_points = layer(filtered["points"].tensor)
        ours = voxelize(points, voxelizer)
        assert np.array_equal(ours.voxels, voxels.numpy()), cloud.name
        assert np.array_equal(ours.num_points, num_points.numpy()), cloud.name
        assert np.array_equal(ours.coors[:, 1:], coors.numpy()) and not ours.coors[:, 0].any(), cloud.name
        assert len(ours.num_points) == min(max_voxels, len(np.unique(coors.numpy(), axis=0)))


@pytest.mark.parametrize("config", [SMALL_CONFIG, FULL_CONFIG])
def test_anchors_and_box_decoding_match_mmdet3d(config: str) -> None:
    import torch
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    from mmloop_runtime.head import anchor_grid, decode_boxes
    from mmloop_runtime.manifest import from_dict

    model_cfg = model_config(config)
    manifest = from_dict(manifest_data(model_cfg))
    init_default_scope("mmdet3d")
    head = MODELS.build(model_cfg.model.bbox_head)
    height, width = model_cfg.model.middle_encoder.output_shape
    feature_hw = (height // 2, width // 2)  # the SECOND backbone's first stride; SECONDFPN maps back to it
    expected = head.prior_generator.grid_anchors([feature_hw], device="cpu")[0].reshape(-1, 7)
    anchors = anchor_grid(manifest.anchors, feature_hw)
    assert anchors.shape == tuple(expected.shape)
    np.testing.assert_allclose(anchors, expected.numpy(), atol=1e-5)
    deltas = np.random.default_rng(0).normal(0, 0.5, anchors.shape).astype(np.float32)
    decoded = head.bbox_coder.decode(expected, torch.from_numpy(deltas)).numpy()
    np.testing.assert_allclose(decode_boxes(anchors, deltas), decoded, atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_head_matches_anchor3dhead_predict_by_feat(seed: int) -> None:
    """Random head maps through mmdet3d's predict_by_feat (what mmdeploy's postprocess calls) and
    through the runtime: the same boxes, scores and labels after per-class rotated NMS."""
    import torch
    from mmdet3d.registry import MODELS
    from mmdet3d.structures import LiDARInstance3DBoxes
    from mmengine.registry import init_default_scope

    from mmloop.deploy.parity import as_detections, detection_agreement
    from mmloop_runtime.head import predict
    from mmloop_runtime.manifest import from_dict

    model_cfg = model_config(SMALL_CONFIG)
    manifest = from_dict(manifest_data(model_cfg))
    init_default_scope("mmdet3d")
    head = MODELS.build(model_cfg.model.bbox_head)
    rng = np.random.default_rng(seed)
    anchors, classes = 6, 3
    maps = {
        "cls_score0": rng.normal(-1.5, 1.5, (1, anchors * classes, 72, 72)).astype(np.float32),
        "bbox_pred0": rng.normal(0, 0.3, (1, anchors * 7, 72, 72)).astype(np.float32),
        "dir_cls_pred0": rng.normal(0, 1, (1, anchors * 2, 72, 72)).astype(np.float32),
    }
    tensors = [[torch.from_numpy(maps[name])] for name in manifest.outputs]
    expected = head.predict_by_feat(
        *tensors, batch_input_metas=[{"box_type_3d": LiDARInstance3DBoxes}], cfg=model_cfg.model.test_cfg
    )[0]
    expected = as_detections(expected)
    got = predict(maps, manifest.outputs, manifest.anchors, manifest.head, manifest.test)
    assert len(expected.labels) == manifest.test.max_num  # enough candidates for NMS and max_num to matter
    agreement = detection_agreement([expected], [got], 1e-4)
    assert agreement["frames_agreeing"] == 1, agreement
    assert agreement["score_max_abs_diff"] < 1e-6


def test_manifest_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    from mmloop_runtime.manifest import load_manifest

    with pytest.raises(FileNotFoundError, match=r"nowhere: not a folder; pass a deployed model folder"):
        load_manifest(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"manifest.json: not found; .*\(rerun `dvc repro export`\)"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest.json: not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match=r"format 'other/9', this runtime reads 'mmloop-runtime/1'"):
        load_manifest(tmp_path)
    axis_aligned = manifest_data(model_config(SMALL_CONFIG))
    axis_aligned["test"]["use_rotate_nms"] = False
    (tmp_path / "manifest.json").write_text(json.dumps(axis_aligned))
    with pytest.raises(ValueError, match=r"manifest.json: test.use_rotate_nms false \(the runtime implements rotated"):
        load_manifest(tmp_path)  # at load time, not at the first frame


def test_manifest_refuses_what_the_runtime_cannot_decode() -> None:
    from mmloop.core.stage import StageError
    from mmloop.models.anchor3d import runtime_unsupported

    model_cfg = model_config(SMALL_CONFIG)
    assert runtime_unsupported(model_cfg) is None
    model_cfg.model.bbox_head.type = "CenterHead"
    model_cfg.model.test_cfg.use_rotate_nms = False
    reason = runtime_unsupported(model_cfg)
    assert "bbox_head 'CenterHead'" in reason and "use_rotate_nms is false" in reason
    with pytest.raises(StageError, match="the runtime cannot run this model: bbox_head 'CenterHead'"):
        manifest_data(model_cfg)


# --- the whole runtime --------------------------------------------------------------------------


def test_runtime_matches_mmdeploy_on_real_kitti_frames(random_model: Path, kitti_real: Path) -> None:
    """Each real frame through mmdeploy's backend model (its test pipeline, voxelizer, the same
    ONNX file, mmdet3d's decoding) and through the runtime from the .bin: the same boxes."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import load_config

    from mmloop.deploy.parity import as_detections, detection_agreement
    from mmloop_runtime import Detector
    from mmloop_runtime.kitti import read_cloud

    deploy_cfg, model_cfg = load_config(str(random_model / "deploy.py"), str(random_model / "model.py"))
    processor = build_task_processor(model_cfg, deploy_cfg, "cpu")
    backend = processor.build_backend_model([str(random_model / "end2end.onnx")])
    detector = Detector(random_model)
    expected, got = [], []
    for cloud in fixture_clouds(kitti_real):
        data, _ = processor.create_input(str(cloud))
        expected.append(as_detections(backend.test_step(data)[0].pred_instances_3d))
        got.append(detector.predict(read_cloud(cloud)))
    agreement = detection_agreement(expected, got, 1e-3)
    assert agreement["frames_agreeing"] == len(expected) == 6, agreement
    assert agreement["boxes"] >= 6 * 20  # NMS had work to do on every frame
    assert agreement["score_max_abs_diff"] < 1e-4


def test_prediction_imports_no_torch(random_model: Path, kitti_real: Path) -> None:
    script = (
        f"import sys, numpy as np\n"
        f"from mmloop_runtime import Detector\n"
        f"points = np.fromfile({str(fixture_clouds(kitti_real)[0])!r}, np.float32).reshape(-1, 4)\n"
        f"boxes, scores, labels = Detector({str(random_model)!r}).predict(points)\n"
        f"assert len(boxes) > 0\n"
        f"heavy = sorted(m for m in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmdet3d', 'mmdeploy') if m in sys.modules)\n"
        f"print(len(boxes), heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, heavy = result.stdout.split(" ", 1)
    assert int(count) > 0 and heavy.strip() == "[]"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmloop_runtime", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_writes_kitti_labels_json_and_pictures(random_model: Path, kitti_real: Path, tmp_path: Path) -> None:
    from PIL import Image

    from mmloop_runtime import Detector
    from mmloop_runtime.kitti import read_cloud

    out = tmp_path / "preds"
    result = run_cli(
        "predict",
        "--model",
        str(random_model),
        str(kitti_real / "training" / "velodyne"),
        "--out",
        str(out),
        "--render",
    )
    assert result.returncode == 0, result.stderr
    assert "6 cloud(s)" in result.stderr and "[6/6] 000005" in result.stderr  # calib/ found beside velodyne/
    detector = Detector(random_model)
    for cloud in fixture_clouds(kitti_real):
        report = json.loads((out / f"{cloud.stem}.json").read_text())
        boxes, scores, labels = detector.predict(read_cloud(cloud))
        assert report["frame_of_reference"] == "lidar" and len(report["detections"]) == len(boxes)
        first = report["detections"][0]
        assert first["label"] == detector.class_names[labels[0]] and first["score"] == pytest.approx(
            scores[0], abs=1e-5
        )
        np.testing.assert_allclose(first["box"], boxes[0], atol=1e-4)
        lines = (out / f"{cloud.stem}.txt").read_text().splitlines()
        assert 0 < len(lines) <= len(boxes)  # KittiMetric's filters: in the image, in range
        fields = lines[0].split()
        assert fields[0] in detector.class_names and len(fields) == 16
        with Image.open(out / f"{cloud.stem}.png") as picture:
            assert picture.format == "PNG" and picture.size[0] > 100


def test_cli_without_calibration_writes_json_only(random_model: Path, kitti_real: Path, tmp_path: Path) -> None:
    cloud = tmp_path / "frame.bin"
    shutil.copyfile(fixture_clouds(kitti_real)[0], cloud)
    result = run_cli("predict", "--model", str(random_model), str(cloud), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["frame.json"]
    result = run_cli("predict", "--model", str(random_model), str(cloud), "--format", "kitti")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "mmloop_runtime: error: --format kitti: label_2 files are in the camera frame; pass --calib <file or folder>"
    )


def test_cli_bad_input_fails_at_once_in_one_line(random_model: Path, kitti_real: Path, tmp_path: Path) -> None:
    clouds = tmp_path / "velodyne"
    clouds.mkdir()
    shutil.copyfile(fixture_clouds(kitti_real)[0], clouds / "000000.bin")
    (clouds / "000001.bin").write_bytes(b"\0" * 18)
    out = tmp_path / "out"
    cases = [
        (
            ["--model", str(random_model), str(clouds)],
            f"{clouds / '000001.bin'}: 18 bytes is not a whole number of 4-float points (16 bytes each); "
            f"is it a KITTI velodyne .bin with 4 features?",
        ),
        (
            ["--model", str(tmp_path), str(clouds / "000000.bin")],
            f"{tmp_path / 'manifest.json'}: not found; {tmp_path} is not a deployed model folder written by "
            f"mmloop's export/deploy stages (rerun `dvc repro export`)",
        ),
        (
            ["--model", str(random_model), str(tmp_path / "missing.bin")],
            f"{tmp_path / 'missing.bin'}: not found; pass a KITTI .bin cloud or a folder of them",
        ),
    ]
    for args, message in cases:
        result = run_cli("predict", *args, "--out", str(out))
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [f"mmloop_runtime: error: {message}"]
        assert not out.exists()  # nothing written before the check
    (clouds / "000001.bin").write_bytes(b"")
    result = run_cli("predict", "--model", str(random_model), str(clouds), "--out", str(out))
    assert result.stderr.strip().splitlines() == [
        f"mmloop_runtime: error: {clouds / '000001.bin'}: an empty cloud (0 bytes); remove it or re-export the frame"
    ]


def test_empty_or_out_of_range_cloud(random_model: Path) -> None:
    from mmloop_runtime import Detector

    detector = Detector(random_model)
    with pytest.raises(ValueError, match=r"points: an empty cloud \(0 points\)"):
        detector.predict(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"points: shape \(10, 3\); the model takes \(N, 4\) points"):
        detector.predict(np.zeros((10, 3), np.float32))
    behind = np.array([[-5.0, 0.0, 0.0, 0.5]], np.float32)  # behind the car: outside the range
    boxes, scores, labels = detector.predict(behind)
    assert boxes.shape == (0, 7) and scores.shape == (0,) and labels.shape == (0,)


@pytest.mark.slow
def test_runtime_installs_and_runs_on_its_own(random_model: Path, kitti_real: Path, tmp_path: Path) -> None:
    """A fresh virtualenv with only the runtime package and what it declares (numpy, onnxruntime):
    `pip install runtime/`, then the CLI on a real frame."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    package = tmp_path / "runtime"  # a copy: pip builds in the source folder (build/, egg-info)
    shutil.copytree(REPO / "runtime", package, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    constraints = REPO / "constraints.txt"  # the same numpy and onnxruntime as the project
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), str(package)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.lower()
    assert "onnxruntime==" in frozen and not any(f"{name}==" in frozen for name in ("torch", "mmcv", "mmdet3d"))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            str(python),
            "-m",
            "mmloop_runtime",
            "predict",
            "--model",
            str(random_model),
            str(fixture_clouds(kitti_real)[0]),
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "000000.json").read_text())["detections"]
