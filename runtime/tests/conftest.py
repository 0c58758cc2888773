"""Fixtures of the runtime's tests: the real KITTI frames in ../shared beside the checkout.

runtime/tests is not a package (tests/ is; two packages named `tests` would collide), so its
modules have unique basenames and import what they share from here as `conftest`."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

#: The repository root (runtime/tests/ is two levels down).
REPO = Path(__file__).resolve().parents[2]
KITTI_REAL = REPO.parent / "shared" / "fixtures" / "kitti-real"

# mmdet3d's KITTI evaluation measures BEV overlaps with a numba CUDA kernel; numba's simulator runs it
# on any host, and must be chosen before numba.cuda is first imported (as mmloop's stages do).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

if importlib.util.find_spec("mmloop_runtime") is None:  # the runtime not installed: use it from the repo
    sys.path.insert(0, str(REPO / "runtime"))


@pytest.fixture(scope="session")
def kitti_real() -> Path:
    """Six real KITTI frames; CI (MMLOOP_REQUIRE_FIXTURES=1) fails instead of skipping without them."""
    if not (KITTI_REAL / "training").is_dir():
        reason = f"real KITTI fixtures not found at {KITTI_REAL} (they live in ../shared beside the checkout)"
        if os.environ.get("MMLOOP_REQUIRE_FIXTURES") == "1":
            pytest.fail(reason + "; MMLOOP_REQUIRE_FIXTURES=1 makes them mandatory")
        pytest.skip(reason)
    return KITTI_REAL


def committed_output(relative: str, tmp_path: Path) -> Path:
    """A stage output as main's dvc.lock records it: the working copy when it matches, else a copy
    from the demo remote (a folder in the repository: what `dvc pull` would copy, no network)."""
    import hashlib

    import yaml

    stages = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"].values()
    md5 = next(out["md5"] for stage in stages for out in stage.get("outs", []) if out["path"] == relative)
    path = REPO / relative
    if path.is_file() and hashlib.md5(path.read_bytes()).hexdigest() == md5:
        return path
    stored = REPO / "demo-remote" / "files" / "md5" / md5[:2] / md5[2:]
    assert stored.is_file(), f"{relative} ({md5}) is neither checked out nor in demo-remote/: run `make publish-demo`"
    copy = tmp_path / Path(relative).name  # mmdet3d reads a config by its .py suffix
    copy.write_bytes(stored.read_bytes())
    return copy


def kittimetric_for_frame(boxes, scores, labels, calib, shape, **metric_args):  # noqa: ANN001, ANN201
    """(KittiMetric, its prediction) for one frame: `bbox2result_kitti` reads only these fields of
    the dataset's infos (set by compute_metrics normally)."""
    import torch
    from mmdet3d.evaluation.metrics import KittiMetric
    from mmdet3d.structures import LiDARInstance3DBoxes

    metric = KittiMetric(ann_file="unused.pkl", **metric_args)
    camera = {
        "height": shape[0],
        "width": shape[1],
        "lidar2cam": calib.lidar2cam.tolist(),
        "cam2img": calib.P2.tolist(),
    }
    metric.data_infos = [{"sample_idx": 0, "images": {"CAM2": camera}}]
    prediction = {
        "bboxes_3d": LiDARInstance3DBoxes(torch.from_numpy(boxes.copy())),
        "scores_3d": torch.from_numpy(scores),
        "labels_3d": torch.from_numpy(labels),
    }
    return metric, prediction
