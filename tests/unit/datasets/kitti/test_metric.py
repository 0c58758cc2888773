"""The KITTI metric's extras: precision-recall curves kept from KittiMetric's own evaluation (the
curves its AP R40 averages), and a prepared frame's ground truth as the BEV pictures count it."""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mmloop.core.stage import StageError
from mmloop.datasets import kitti
from tests.unit.datasets.kitti.test_convert import prepared

# mmdet3d's KITTI evaluation measures BEV overlaps with a numba CUDA kernel: numba's simulator runs
# it on any host, chosen before numba.cuda is first imported (as the stages do in select_device).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

CLASSES = ["Pedestrian", "Cyclist", "Car"]
FRAMES = [f"{i:06d}" for i in range(6)]


def detections(gt_anno: dict, rng: np.random.Generator) -> dict:
    """A detection anno for one frame: each labelled object found, some well, some poorly, with
    random scores, plus two false cars."""
    keep = np.flatnonzero(np.isin(gt_anno["name"], CLASSES))
    count = len(keep) + 2
    location = np.concatenate([gt_anno["location"][keep], [[5.0, 1.6, 20.0], [-6.0, 1.6, 30.0]]])
    location[:, [0, 2]] += rng.normal(0, 0.3, (count, 2))
    dimensions = np.concatenate([gt_anno["dimensions"][keep], [[4.0, 1.5, 1.7]] * 2])
    return {
        "name": np.concatenate([gt_anno["name"][keep], ["Car", "Car"]]),
        "truncated": np.zeros(count),
        "occluded": np.zeros(count),
        "alpha": np.concatenate([gt_anno["alpha"][keep], [0.0, 0.0]]),
        "bbox": np.concatenate([gt_anno["bbox"][keep], [[600.0, 170.0, 660.0, 220.0]] * 2]),
        "dimensions": dimensions,
        "location": location,
        "rotation_y": np.concatenate([gt_anno["rotation_y"][keep], [1.57, 1.57]]) + rng.normal(0, 0.05, count),
        "score": rng.uniform(0.1, 1.0, count),
    }


def test_pr_evaluator_swaps_in_the_curve_metric_and_refuses_others() -> None:
    from mmdet3d.evaluation.metrics import KittiMetric
    from mmdet3d.registry import METRICS

    evaluator = kitti.pr_evaluator({"type": "KittiMetric", "ann_file": "a.pkl", "metric": "bbox"})
    assert evaluator == {"type": kitti.metric.CURVE_METRIC, "ann_file": "a.pkl", "metric": "bbox"}
    assert kitti.pr_evaluator(evaluator) == evaluator  # idempotent
    built = METRICS.build(evaluator)
    assert isinstance(built, KittiMetric) and type(built).__name__ == kitti.metric.CURVE_METRIC
    for bad, kind in (({"type": "NuScenesMetric"}, "'NuScenesMetric'"), ([{"type": "KittiMetric"}], "'list'")):
        with pytest.raises(StageError) as error:
            kitti.pr_evaluator(bad)
        assert str(error.value) == (
            f"the model config's test_evaluator is {kind}; data.format kitti evaluates with KittiMetric"
        )


@pytest.mark.fixtures
def test_curves_are_the_ones_kittimetric_averages_into_ap(kitti_real: Path) -> None:
    from mmdet3d.registry import METRICS

    from mmloop.openmmlab.tools import import_tool

    get_label_anno = import_tool("dataset_converters.kitti_data_utils").get_label_anno
    gt_annos = [get_label_anno(str(kitti_real / "training" / "label_2" / f"{frame}.txt")) for frame in FRAMES]
    rng = np.random.default_rng(0)
    dt_annos = [detections(anno, rng) for anno in gt_annos]
    metric = METRICS.build(kitti.pr_evaluator({"type": "KittiMetric", "ann_file": "unused.pkl"}))
    module = importlib.import_module("mmdet3d.evaluation.functional.kitti_utils.eval")
    original = module.eval_class

    ap = metric.kitti_evaluate({"pred_instances_3d": dt_annos}, gt_annos, metric="bbox", classes=CLASSES)
    assert module.eval_class is original  # put back once KittiMetric is done
    assert sorted(metric.precision) == [0, 1, 2]  # 2D boxes, BEV, 3D
    checked = 0
    for kind, eval_type in (("3D", 2), ("BEV", 1)):
        for index, name in enumerate(CLASSES):
            precision = metric.precision[eval_type][index, 1, 0]  # moderate, strict IoU
            assert precision.shape == (41,)
            expected = ap[f"pred_instances_3d/KITTI/{name}_{kind}_AP40_moderate_strict"]
            assert round(float(precision[1:].mean()) * 100, 4) == pytest.approx(expected, abs=1e-4)
            checked += expected > 0
    assert checked >= 2  # not all zero: the curves carry the APs

    metric.classes = CLASSES  # compute_metrics sets it from the dataset before evaluating
    rows = kitti.pr_curves(SimpleNamespace(metrics=[SimpleNamespace(), metric]), ["Car", "Pedestrian"])
    assert len(rows) == 41 and list(rows[0]) == ["recall", "Car", "Pedestrian"]
    assert [row["recall"] for row in rows[:3]] == [0.0, 0.025, 0.05] and rows[-1]["recall"] == 1.0
    car_ap = sum(row["Car"] for row in rows[1:]) / 40 * 100
    assert car_ap == pytest.approx(ap["pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict"], abs=0.01)
    with pytest.raises(StageError, match=r"^the test evaluator kept no precision-recall curves"):
        kitti.pr_curves(SimpleNamespace(metrics=[SimpleNamespace()]), CLASSES)


@pytest.mark.fixtures
def test_bev_truth_of_a_prepared_frame_is_its_label_file(kitti_real: Path, tmp_path: Path) -> None:
    """What the evaluate stage draws from the info file equals what the runtime reads from label_2."""
    from mmloop_runtime import kitti as runtime_kitti
    from mmloop_runtime import matching

    out = prepared(kitti_real, tmp_path)
    frames = 0
    for split in ("train", "val"):
        with (out / f"kitti_infos_{split}.pkl").open("rb") as handle:
            infos = pickle.load(handle)
        for info in infos["data_list"]:
            frame = Path(info["lidar_points"]["lidar_path"]).stem
            calib = runtime_kitti.read_calib(kitti_real / "training" / "calib" / f"{frame}.txt")
            boxes = np.array([[15.0, 0.0, -1.6, 4.0, 1.8, 1.5, 0.0], [-10.0, 0.0, -1.6, 4.0, 1.8, 1.5, 0.0]])
            truth, ignored = kitti.bev_truth(info, infos["metainfo"]["categories"], CLASSES, boxes, {})
            theirs = matching.read_label_truth(kitti_real / "training" / "label_2" / f"{frame}.txt", calib, CLASSES)
            np.testing.assert_allclose(truth.boxes, theirs.boxes, atol=1e-6)
            assert truth.labels.tolist() == theirs.labels.tolist()
            assert truth.ignored.tolist() == theirs.ignored.tolist()
            assert ignored.tolist() == [False, True]  # ahead is scored, behind the camera is not
            frames += 1
    assert frames == 6
