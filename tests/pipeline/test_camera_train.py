"""The camera loop's prepare/train/evaluate half for real, in a scratch copy of the repo: `dvc repro
evaluate_2d` in pipelines/kitti-camera on the pulled sample, a few iterations from scratch (the
accuracy comes from the pretrained checkpoint, which a CI-sized run cannot make), then a warm start,
`dvc exp run -S`, and the one-line errors of bad params."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmloop.core.paths import load_paths
from tests.helpers import REPO, copy_repo, pull_artifacts, sh, venv_env

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
PIPELINE = Path("pipelines") / "kitti-camera"
PATHS = load_paths(REPO / PIPELINE / "params.yaml")
#: 36 train images at batch 8: 5 iterations an epoch.
EPOCHS = 2
CLASSES = ["Car", "Pedestrian", "Cyclist"]


def set_camera_params(folder: Path, **changes: object) -> None:
    """Edit the pipeline's params.yaml: `train__epochs=2` sets train.epochs."""
    path = folder / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def stage(name: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = dict(venv_env(), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=folder, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch repo whose camera pipeline trained EPOCHS epochs from scratch and evaluated."""
    clone = tmp_path_factory.mktemp("camera") / "mmloop"
    copy_repo(clone)
    pull_artifacts(clone)
    folder = clone / PIPELINE
    set_camera_params(folder, model__load_from=None, train__epochs=EPOCHS, train__val_interval=1, train__log_interval=1)
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "camera: a few epochs from scratch"], clone)
    out = sh([*DVC, "repro", "evaluate_2d"], folder)
    # validate's report is committed with the same inputs, so DVC skips it; prepare_2d's COCO files
    # are never cached (a fresh clone builds them), and the params above retrain.
    assert "Stage 'validate' didn't change, skipping" in out or "Running stage 'validate'" in out, out[-3000:]
    for name in ("prepare_2d", "train_2d", "evaluate_2d"):
        assert f"Running stage '{name}'" in out, out[-3000:]
    assert "mmloop train_2d: from scratch" in out
    return folder


def test_repro_writes_coco_files_model_metrics_and_pictures(camera: Path) -> None:
    for split in ("train", "val"):
        coco = json.loads((camera / PATHS.prepared / f"{split}.json").read_text())
        assert [c["name"] for c in coco["categories"]] == CLASSES and coco["images"] and coco["annotations"]
    from mmengine.config import Config

    from mmloop.core.checkpoint import checkpoint_classes, read_checkpoint

    checkpoint = read_checkpoint(camera / PATHS.model, "paths.model")
    assert checkpoint_classes(checkpoint) == CLASSES and checkpoint["meta"]["epoch"] == EPOCHS
    cfg = Config.fromfile(str(camera / PATHS.model_config))
    assert tuple(cfg.input_size) == (192, 640) and cfg.train_cfg.max_epochs == EPOCHS

    report = json.loads((camera / PATHS.eval).read_text())
    assert report["split"] == "val" and report["images"] == 12
    for key in ("coco_bbox_mAP", "coco_bbox_mAP_50", "coco_bbox_mAP_75", "Car_2d_moderate", "mAP_2d_moderate"):
        assert isinstance(report[key], float) and 0 <= report[key] <= 100, (key, report)
    for name in CLASSES:
        assert {f"{name}_2d_{level}" for level in ("easy", "moderate", "hard")} <= set(report)
    bars = json.loads((camera / PATHS.ap_plot).read_text())["ap"]
    assert [bar["class"] for bar in bars][:3] == ["Car easy", "Car moderate", "Car hard"] and len(bars) == 9
    assert len(json.loads((camera / PATHS.pr_plot).read_text())["pr"]) == 41

    from PIL import Image

    pictures = sorted((camera / PATHS.bev).glob("*.png"))
    assert len(pictures) == 4
    with Image.open(pictures[0]) as picture:
        assert picture.size == (1242, 375)
    curves = json.loads((camera / PATHS.train_curves / "metrics.json").read_text())
    # (COCO's val mAP becomes a curve too, once the model predicts anything: not after 10 iterations.)
    assert curves["step"] == EPOCHS * 5 and "loss" in curves["train"]
    assert not list((camera / PATHS.train_work).iterdir())  # the finished run's work dir is gone


def test_a_warm_start_loads_the_checkpoint(camera: Path, tmp_path: Path) -> None:
    """train.epochs 0 saves the starting weights as they are: those of model.load_from."""
    import torch

    from mmloop.core.checkpoint import read_checkpoint

    warm = tmp_path / "warm.pth"
    warm.write_bytes((camera / PATHS.model).read_bytes())
    scratch = tmp_path / "pipeline"
    scratch.mkdir()
    params = yaml.safe_load((camera / "params.yaml").read_text())
    params["model"]["load_from"] = str(warm)
    params["train"]["epochs"] = 0
    params["data"]["root"] = str((camera / params["data"]["root"]).resolve())
    params["model"]["config"] = str((camera / params["model"]["config"]).resolve())
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (scratch / "work").mkdir()
    os.symlink(camera / PATHS.prepared, scratch / PATHS.prepared)
    result = stage("train_2d", scratch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warm start from {warm}" in result.stdout
    saved = read_checkpoint(scratch / PATHS.model, "paths.model")["state_dict"]
    start = read_checkpoint(warm, "model.load_from")["state_dict"]
    assert saved.keys() == start.keys() and all(torch.equal(saved[k], start[k]) for k in start)


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("prepare_2d", {"model__classes": ["Car", "Bus"]}, "model.classes has unknown class 'Bus'"),
        ("train_2d", {"model__input_size": [190, 640]}, "model.input_size is [190, 640]; it must be [height, width]"),
        (
            "train_2d",
            {"model__load_from": "../../checkpoints/missing.pth"},
            "model.load_from '../../checkpoints/missing",
        ),
    ],
)
def test_bad_params_fail_in_one_line(camera: Path, name: str, changes: dict, message: str) -> None:
    original = (camera / "params.yaml").read_text()
    try:
        set_camera_params(camera, **changes)
        result = stage(name, camera)
    finally:
        (camera / "params.yaml").write_text(original)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"mmloop {name}: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_exp_run_changes_the_camera_metrics_and_exp_show_has_them(camera: Path) -> None:
    """`dvc exp run -S model.load_from=<the pretrained checkpoint>`: a few iterations from scratch
    predict nothing (every AP 0), the warm start finds the cars."""
    clone = camera.parents[1]
    pretrained = "../../checkpoints/yolox-nano_kitti-camera.pth"
    if not (camera / pretrained).is_file():
        pytest.skip(f"{pretrained} is not in checkpoints.dvc yet (scripts/pretrain_camera.py makes it)")
    before = json.loads((camera / PATHS.eval).read_text())
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "trained"], clone)
    sh([*DVC, "exp", "run", "evaluate_2d", "-S", f"model.load_from={pretrained}", "-n", "more-epochs"], camera)
    after = json.loads((camera / PATHS.eval).read_text())
    assert after["Car_2d_moderate"] > before["Car_2d_moderate"]
    shown = subprocess.run([*DVC, "exp", "show", "--json"], cwd=camera, capture_output=True, text=True, check=True)
    found = {}
    for row in json.loads(shown.stdout):
        for exp in row.get("experiments") or []:
            for revision in exp.get("revs", []):
                if revision.get("name") == "more-epochs":
                    found = revision["data"]
    assert found, "experiment 'more-epochs' missing from dvc exp show --json"
    # exp show lists every metrics file of the repository: the LiDAR loop's metrics/eval.json too
    evals = [
        v["data"] for k, v in found["metrics"].items() if k.endswith("eval.json") and "Car_2d_moderate" in v["data"]
    ]
    assert len(evals) == 1, sorted(found["metrics"])
    metrics = evals[0]
    assert metrics["Car_2d_moderate"] == after["Car_2d_moderate"]
    assert metrics["coco_bbox_mAP"] == after["coco_bbox_mAP"]
