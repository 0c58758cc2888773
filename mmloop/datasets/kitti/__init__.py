"""The KITTI object-detection layout (training/{velodyne,calib,label_2,image_2}, ImageSets/).

The dataset interface (mmloop/datasets/__init__.py) for KITTI: checks.py is what `validate`
runs, convert.py what `prepare` runs (mmdet3d's converters), metric.py KittiMetric's summary, its
precision-recall curves and a frame's ground truth as the BEV pictures count it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError
from mmloop.datasets.kitti.metric import bev_truth, pr_curves, pr_evaluator
from mmloop.datasets.kitti.metric import kitti_bars as metric_bars
from mmloop.datasets.kitti.metric import kitti_summary as metric_summary

__all__ = [
    "validate",
    "prepare",
    "info_file",
    "first_cloud",
    "metric_summary",
    "metric_bars",
    "pr_evaluator",
    "pr_curves",
    "bev_truth",
]

#: mmdet3d's name stem for KITTI info files (kitti_infos_<split>.pkl, kitti_dbinfos_train.pkl).
INFO_PREFIX = "kitti"

# checks and convert are imported by the stage that runs them only: the stages that need an info
# file or the metric (train, evaluate, export, deploy) do not depend on them in dvc.yaml.


def validate(root: Path, params: dict[str, Any]) -> Any:
    from mmloop.datasets.kitti.checks import validate_dataset
    from mmloop.datasets.kitti.files import KITTI_CLASSES

    known_classes = tuple(params.get("known_classes", KITTI_CLASSES))
    return validate_dataset(root, list(params["splits"]), known_classes)


def prepare(root: Path, splits: list[str], out: Path) -> dict[str, Any]:
    from mmloop.datasets.kitti.convert import prepare_dataset

    return prepare_dataset(root, splits, out)


def info_file(prepared: Path, split: str) -> Path:
    return prepared / f"{INFO_PREFIX}_infos_{split}.pkl"


def first_cloud(prepared: Path, split: str) -> Path:
    """The reduced cloud of a prepared split's first frame."""
    path = info_file(prepared, split)
    with path.open("rb") as handle:
        frames = pickle.load(handle)["data_list"]
    if not frames:
        raise StageError(f"{path}: no frames; check the split's ImageSets file and rerun `dvc repro prepare`")
    return prepared / "training" / "velodyne_reduced" / frames[0]["lidar_points"]["lidar_path"]
