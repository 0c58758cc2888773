"""Params reach mmdet3d configs as cfg-options, and bad params fail before any training starts.
(mmloop.openmmlab.cfg_options with the anchor-head family's parts from mmloop.models.anchor3d.)"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError
from mmloop.openmmlab import cfg_options
from mmloop.openmmlab.config import load_config
from tests.helpers import REPO, run_stage, write_params

SMALL = "configs/models/pointpillars_small-sample.py"
FULL = "configs/models/pointpillars_kitti-3class.py"
PATHS = load_paths(REPO / "params.yaml")


def repo_params() -> tuple[dict[str, Any], dict[str, Any]]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return params["model"], params["train"]


@pytest.fixture(scope="module")
def small_cfg() -> Any:
    os.chdir(REPO)  # config paths in params are relative to the repo root, as under `dvc repro`
    return load_config(SMALL)


def merged(cfg: Any, model: dict[str, Any], train: dict[str, Any]) -> Any:
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict(cfg_options.cfg_options(cfg, model, train, PATHS.prepared), allow_list_keys=True)
    return cfg


def test_repo_params_match_the_small_config(small_cfg: Any) -> None:
    """The shipped params restate the small config, so they change nothing but the schedule."""
    model, train = repo_params()
    options = cfg_options.cfg_options(small_cfg, model, train, PATHS.prepared)
    assert not any(key.startswith("model.") for key in options)
    assert options["train_cfg.max_epochs"] == train["epochs"]


def test_deterministic_turns_on_cuda_determinism_only_on_a_gpu(small_cfg: Any) -> None:
    model, train = repo_params()
    for device, deterministic, expected in [("cuda", True, True), ("cuda", False, False), ("cpu", True, False)]:
        options = cfg_options.cfg_options(
            small_cfg, model, {**train, "deterministic": deterministic}, PATHS.prepared, device
        )
        assert options["randomness"] == {"seed": train["seed"], "deterministic": expected}


def test_grid_params_reach_every_place_the_config_uses_them(small_cfg: Any) -> None:
    model, train = repo_params()
    model["point_cloud_range"] = [0, -25.6, -3, 51.2, 25.6, 1]
    model["voxel_size"] = [0.2, 0.2, 4]
    cfg = merged(small_cfg, model, train)
    assert cfg.model.middle_encoder.output_shape == [256, 256]
    assert cfg.model.data_preprocessor.voxel_layer.voxel_size == [0.2, 0.2, 4]
    assert cfg.model.voxel_encoder.point_cloud_range == model["point_cloud_range"]
    filters = [t for t in cfg.train_dataloader.dataset.dataset.pipeline if "point_cloud_range" in t]
    filters += [t for t in cfg.test_dataloader.dataset.pipeline if "point_cloud_range" in t]
    assert len(filters) == 3 and all(t.point_cloud_range == model["point_cloud_range"] for t in filters)
    assert [r[:2] + r[3:5] for r in cfg.model.bbox_head.anchor_generator.ranges] == [[0, -25.6, 51.2, 25.6]] * 3
    assert [r[2] for r in cfg.model.bbox_head.anchor_generator.ranges] == [-0.6, -0.6, -1.78]  # heights kept
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules

    register_all_modules()
    detector = MODELS.build(cfg.model)  # a consistent config builds
    assert detector.middle_encoder.nx == 256


def test_class_subset_keeps_its_anchors_assigners_and_sampling(small_cfg: Any) -> None:
    model, train = repo_params()
    model["classes"] = ["Car"]
    cfg = merged(small_cfg, model, train)
    head = cfg.model.bbox_head
    assert head.num_classes == 1 and head.anchor_generator.sizes == [[3.9, 1.6, 1.56]]
    assert cfg.model.train_cfg.assigner[0].pos_iou_thr == 0.6  # the Car assigner
    sampler = cfg.train_dataloader.dataset.dataset.pipeline[2].db_sampler
    assert sampler.classes == ["Car"] and list(sampler.sample_groups) == ["Car"]
    assert cfg.val_dataloader.dataset.metainfo.classes == ["Car"]


def test_schedule_stretches_with_epochs_and_moves_with_lr(small_cfg: Any) -> None:
    model, train = repo_params()
    train.update(epochs=40, lr=0.004)
    cfg = merged(small_cfg, model, train)
    first, second = cfg.param_scheduler[0], cfg.param_scheduler[1]
    assert cfg.train_cfg.max_epochs == 40
    assert math.isclose(first.end, 16) and math.isclose(second.begin, 16) and math.isclose(second.end, 40)
    assert math.isclose(first.eta_min, 0.04) and math.isclose(cfg.optim_wrapper.optimizer.lr, 0.004)
    assert math.isclose(cfg.param_scheduler[2].eta_min, 0.85 / 0.95)  # momentum targets untouched


def test_data_paths_follow_the_prepared_folder() -> None:
    """A shipped mmdet3d config reads data/kitti/; every path in it moves to work/prepared/."""
    os.chdir(REPO)
    cfg = load_config("mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py")
    options = cfg_options.data_options(cfg.to_dict(), Path("work/prepared"))
    assert options["val_evaluator.ann_file"] == "work/prepared/kitti_infos_val.pkl"
    assert (
        options["train_dataloader.dataset.dataset.pipeline.2.db_sampler.info_path"]
        == "work/prepared/kitti_dbinfos_train.pkl"
    )
    assert all(value.startswith("work/prepared/") for value in options.values())


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("model", "point_cloud_range", [0, -23.04, -3, 46.0, 23.04, 1]),
            "does not divide the point cloud range's x extent 46",
        ),
        (
            ("model", "point_cloud_range", [0, -23.04, -3, 44.8, 23.04, 1]),
            "not a multiple of the backbone's total stride 8",
        ),
        (("model", "classes", ["Car", "Van"]), "model.classes has 'Van', which"),
        (("model", "classes", ["Car", "Cyclist"]), "the train split has no 'Cyclist' objects"),
        (("train", "epochs", 2.5), "train.epochs is 2.5; it must be a whole number >= 0"),
        (("train", "lr", 0), "train.lr is 0; it must be a number > 0"),
    ],
)
def test_check_params_rejects(small_cfg: Any, change: tuple[str, str, Any], message: str) -> None:
    model, train = repo_params()
    model["load_from"] = None
    section, key, value = change
    (model if section == "model" else train)[key] = value
    with pytest.raises(StageError, match=None) as error:
        cfg_options.check_params(model, train, small_cfg, {"Car": 10, "Pedestrian": 3})
    assert message in str(error.value)


@pytest.fixture(scope="module")
def prepared_workdir(small_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sample prepared once, as `dvc repro prepare` would leave it."""
    workdir = tmp_path_factory.mktemp("prepared")
    write_params(workdir, small_sample)
    result = run_stage("prepare", workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / PATHS.prepared


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "model.config",
            "configs/models/pointpillars_tiny.py",
            "model.config 'configs/models/pointpillars_tiny.py' not found; use one of",
        ),
        ("train.epochs", -3, "train.epochs is -3; it must be a whole number >= 0"),
        ("model.voxel_size", [0.3, 0.32, 4], "model.voxel_size x=0.3 does not divide"),
        (
            "model.classes",
            ["Car", "Truck"],
            "model.classes has 'Truck', which configs/models/pointpillars_small-sample.py has no anchors for",
        ),
        (
            "model.load_from",
            "checkpoints/missing.pth",
            "model.load_from 'checkpoints/missing.pth' not found; run `dvc pull checkpoints.dvc`",
        ),
    ],
)
def test_train_stage_fails_fast_with_one_line(
    prepared_workdir: Path, tmp_path: Path, key: str, value: Any, message: str
) -> None:
    (tmp_path / PATHS.prepared).parent.mkdir(parents=True)
    (tmp_path / PATHS.prepared).symlink_to(prepared_workdir)
    (tmp_path / "configs").symlink_to(REPO / "configs")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    section, name = key.split(".")
    params[section][name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_stage("train", tmp_path, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("mmloop train: error: params.yaml: ") and message in lines[-1], result.stderr[-2000:]
    assert "Epoch(train)" not in result.stdout + result.stderr
    assert not (tmp_path / PATHS.model.parent).exists() and not (tmp_path / PATHS.train_work).exists()
