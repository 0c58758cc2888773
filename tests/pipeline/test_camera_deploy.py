"""The camera loop's export_2d and deploy_2d stages, run as dvc runs them, in a scratch pipeline folder
on a small generated sample: a seeded random YOLOX (the stand-in config) and COCO files stand in for
train_2d's and prepare_2d's outputs. Every gate is checked on what the stages wrote, and a gate
set too tight fails the stage with one error line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from tests.unit.camera.random_model import camera_config, random_checkpoint, write_coco

pytestmark = pytest.mark.slow
CAMERA = REPO / "pipelines" / "kitti-camera"


def stage(workdir: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, small_sample: Path) -> Path:
    """pipelines/kitti-camera's params, with train_2d's model and prepare_2d's COCO files in place."""
    from mmloop.core.device import select_device

    select_device("cpu")
    workdir = tmp_path_factory.mktemp("kitti-camera")
    params = yaml.safe_load((CAMERA / "params.yaml").read_text())
    params["data"]["root"] = str(small_sample)
    params["deploy"]["int8"]["calibration_frames"] = 4
    # The random model (BN statistics of one image) rounds worse than a trained one: 1.3e-3 measured.
    params["deploy"]["tolerance"]["fp32"]["max_abs_diff"] = 5.0e-3
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    coco = workdir / params["paths"]["prepared"]
    for split in ("train", "val"):
        write_coco(small_sample, split, coco / f"{split}.json")
    model_cfg = camera_config(coco / "val.json")
    (workdir / "models").mkdir()
    model_cfg.dump(str(workdir / params["paths"]["model_config"]))
    image = next((small_sample / "training" / "image_2").glob("*.png"))
    random_checkpoint(model_cfg, workdir / params["paths"]["model"], image)
    result = stage(workdir, "export_2d")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TensorRT parser: ready" in result.stdout
    return workdir


def test_export_2d_writes_the_graph_its_manifest_and_report(pipeline: Path) -> None:
    folder = pipeline / "deploy" / "onnx"
    assert sorted(path.name for path in folder.iterdir()) == ["deploy.py", "end2end.onnx", "manifest.json", "model.py"]
    report = json.loads((pipeline / "metrics" / "export.json").read_text())
    assert report["input_size"] == [192, 640] and report["op_types"]["NonMaxSuppression"] == 1
    assert report["tensorrt_readiness"]["ready"] is True


@pytest.mark.parametrize("target", ["onnxruntime-fp32", "onnxruntime-int8"])
def test_deploy_2d_checks_the_target_against_pytorch_and_the_runtime(pipeline: Path, target: str) -> None:
    result = stage(pipeline, "deploy_2d", "--target", target)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((pipeline / "metrics" / "deploy" / f"{target}.json").read_text())
    latency = json.loads((pipeline / "metrics" / "deploy" / f"{target}.latency.json").read_text())
    everything = yaml.safe_load((pipeline / "params.yaml").read_text())
    params = everything["deploy"]
    frames = len((Path(everything["data"]["root"]) / "ImageSets" / "val.txt").read_text().split())
    assert report["frames"] == frames
    assert report["runtime_boxes"] > 0 and report["boxes"] == report["runtime_boxes"]
    assert report["runtime_frames_agreeing"] == frames and report["runtime_frames_disagreeing"] == []
    assert report["runtime_box_max_abs_diff"] <= params["runtime_tolerance"]["box_abs_diff"]
    precision = target.split("-")[1]
    assert abs(report["mAP_delta"]) <= params["tolerance"][precision]["map_delta"]
    assert report["max_abs_diff"] is not None and set(report["max_abs_diff_by_output"]) >= {"cls_score0", "objectness2"}
    if precision == "fp32":
        assert report["max_abs_diff"] <= params["tolerance"]["fp32"]["max_abs_diff"]
    else:
        assert report["calibration_frames"] == 4 and report["int8_layers"]["Conv"] > 0
    assert set(latency["runtime_latency_ms"]) == {"preprocess", "network", "postprocess", "total"}
    folder = pipeline / "deploy" / target
    assert sorted(path.name for path in folder.iterdir()) == ["deploy.py", "end2end.onnx", "manifest.json", "model.py"]


def test_a_parity_gate_set_too_tight_fails_the_stage_with_one_line(pipeline: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "tight"
    shutil.copytree(pipeline, workdir, ignore=shutil.ignore_patterns("deploy"))
    shutil.copytree(pipeline / "deploy" / "onnx", workdir / "deploy" / "onnx")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["deploy"]["tolerance"]["fp32"]["max_abs_diff"] = 1e-12
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = stage(workdir, "deploy_2d", "--target", "onnxruntime-fp32")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mmloop deploy_2d: error:")]
    assert len(errors) == 1 and "over deploy.tolerance.fp32.max_abs_diff 1e-12" in errors[0], result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == errors[0]  # the last word, no traceback
    assert (workdir / "metrics" / "deploy" / "onnxruntime-fp32.json").is_file()  # the report says by how much
