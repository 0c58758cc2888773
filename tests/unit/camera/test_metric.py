"""KITTI's 2D AP from a prepare_2d COCO file (mmloop.camera.metric): mmdet3d's evaluation fed with 2D boxes,
KITTI's ignore rules kept, and the flat summary evaluate_2d writes."""

from __future__ import annotations

import os

import numpy as np

from mmloop.camera.coco import annotations
from mmloop.camera.metric import detections, ground_truth, kitti_2d_ap, metric_bars, metric_summary, pr_curves
from mmloop.datasets.kitti.files import Label
from mmloop.openmmlab.dvclive import metric_name

# mmdet3d's KITTI evaluation compiles a numba CUDA kernel when imported: numba's simulator runs
# it on any host (the stages choose it in select_device).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

CLASSES = ["Car", "Pedestrian", "Cyclist"]


def label(kind: str, bbox: tuple[float, float, float, float], occluded: int = 0) -> Label:
    return Label(kind, 0.0, occluded, 0.0, bbox, (1.5, 1.6, 3.9), (1.0, 1.5, 20.0), 0.0)


def coco(frames: list[list[Label]]) -> dict:
    anns = [a for i, labels in enumerate(frames) for a in annotations(labels, CLASSES, i)]
    for number, ann in enumerate(anns, start=1):
        ann["id"] = number
    return {
        "images": [{"id": i} for i in range(len(frames))],
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }


#: KITTI's AP samples precision at 41 recall points, one per threshold its scores cross: with fewer
#: than 40 objects of a class, most points stay 0 (2 perfect boxes score 2.5). 30 frames of 2 each.
OBJECT_FRAMES = 30
FRAMES = [
    [
        label("Car", (100, 150, 300, 250)),
        label("Car", (400, 160, 520, 240)),
        label("Pedestrian", (500, 150, 530, 230)),
        label("Pedestrian", (600, 150, 630, 230)),
        label("Cyclist", (50, 150, 90, 240)),
        label("Cyclist", (1000, 150, 1040, 240)),
        label("DontCare", (900, 100, 1000, 200)),
        label("Van", (700, 140, 900, 260)),
    ]
    for _ in range(OBJECT_FRAMES)
] + [[]]  # a frame without objects (kitti_eval itself fails on one first)


def truth_list() -> list[dict]:
    truth = ground_truth(coco(FRAMES))
    return [truth[i] for i in range(len(FRAMES))]


def dets(frame: list[tuple[tuple[float, ...], float, str]]) -> dict:
    boxes = np.array([b for b, _, _ in frame], dtype=float).reshape(-1, 4)
    return detections(
        boxes, np.array([s for _, s, _ in frame]), np.array([CLASSES.index(c) for _, _, c in frame]), CLASSES
    )


def perfect(index: int) -> list[tuple[tuple[float, ...], float, str]]:
    """Each object of a frame found, scores in (0.5, 1) and different from frame to frame."""
    score = 0.9 - index / 200
    return [
        (tuple(float(v) for v in item.bbox), score - n / 1000, item.type)
        for n, item in enumerate(FRAMES[index])
        if item.type in CLASSES
    ]


def run(extra: dict[int, list] | None = None, replace: dict[int, list] | None = None) -> dict:
    frames = [(replace or {}).get(i, perfect(i)) + (extra or {}).get(i, []) for i in range(len(FRAMES))]
    table, _ = kitti_2d_ap(truth_list(), [dets(f) for f in frames], CLASSES)
    return table


def test_ground_truth_keeps_kitti_names_and_one_dont_care_region() -> None:
    first, *_, empty = truth_list()
    # DontCare is stored once per category in the COCO file: one region again.
    assert list(first["name"]) == ["Car", "Car", "Pedestrian", "Pedestrian", "Cyclist", "Cyclist", "DontCare", "Van"]
    assert first["bbox"][0].tolist() == [100, 150, 300, 250] and empty["bbox"].shape == (0, 4)


def test_perfect_detections_score_100_and_none_score_0() -> None:
    table, precision = kitti_2d_ap(truth_list(), [dets(perfect(i)) for i in range(len(FRAMES))], CLASSES)
    for name in CLASSES:
        assert table[name] == {"easy": 100.0, "moderate": 100.0, "hard": 100.0}
    assert precision.shape == (3, 3, 41)
    table, _ = kitti_2d_ap(truth_list(), [dets([]) for _ in FRAMES], CLASSES)
    assert table["Car"]["moderate"] == 0.0


def test_kitti_ignore_rules_and_iou_thresholds() -> None:
    # Car detections on the DontCare region and on the Van, outscoring the rest: no false positives.
    on_ignored = [((900, 100, 1000, 200), 0.99, "Car"), ((700, 140, 900, 260), 0.99, "Car")]
    assert run(extra={i: on_ignored for i in range(OBJECT_FRAMES)})["Car"]["moderate"] == 100.0
    # The same boxes elsewhere are false positives: precision drops at every recall.
    elsewhere = [((600, 10, 700, 100), 0.99, "Car"), ((800, 10, 900, 100), 0.99, "Car")]
    assert run(extra={i: elsewhere for i in range(OBJECT_FRAMES)})["Car"]["moderate"] < 60.0
    # Boxes shifted to IoU 0.67: every Car missed (0.7 needed), every Pedestrian found (0.5).
    shifted = {
        i: [
            ((140, 150, 340, 250), 0.9, "Car"),
            ((440, 160, 560, 240), 0.9, "Car"),
            ((504, 150, 534, 230), 0.8, "Pedestrian"),
            ((604, 150, 634, 230), 0.8, "Pedestrian"),
        ]
        for i in range(OBJECT_FRAMES)
    }
    table = run(replace=shifted)
    assert table["Car"]["moderate"] == 0.0 and table["Pedestrian"]["moderate"] == 100.0


def test_summary_is_flat_for_dvc_exp_show() -> None:
    metrics = {f"coco/{k}": 0.5 for k in ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m")}
    metrics.update({"coco/bbox_mAP_l": -1.0, "coco/Car_precision": 0.612, "coco/Pedestrian_precision": float("nan")})
    for name in CLASSES:
        for level in ("easy", "moderate", "hard"):
            metrics[f"kitti2d/{name}_2D_AP40_{level}"] = 80.123
    metrics["kitti2d/Overall_2D_AP40_moderate"] = 80.123
    summary = metric_summary(metrics, CLASSES)
    assert summary["coco_bbox_mAP"] == 50.0 and summary["coco_bbox_mAP_l"] is None
    assert summary["coco_Car_AP"] == 61.2 and summary["coco_Pedestrian_AP"] is None
    assert summary["Car_2d_moderate"] == 80.12 and summary["mAP_2d_moderate"] == 80.12
    assert all(not isinstance(v, dict) for v in summary.values())
    bars = metric_bars(summary, CLASSES)
    assert len(bars) == 9 and bars[1] == {"class": "Car moderate", "2D AP (R40)": 80.12}
    rows = pr_curves(np.ones((3, 3, 41)), CLASSES)
    assert len(rows) == 41 and rows[-1] == {"recall": 1.0, "Car": 1.0, "Pedestrian": 1.0, "Cyclist": 1.0}


def test_coco_val_map_becomes_a_dvclive_curve() -> None:
    assert metric_name("coco/bbox_mAP") == "val/coco_bbox_mAP"
    assert metric_name("coco/bbox_mAP_50") == "val/coco_bbox_mAP_50"
    assert metric_name("coco/Car_precision") is None


def test_no_predictions_at_all_score_0() -> None:
    """CocoMetric reports nothing when no image has a prediction (an untrained model)."""
    metrics = {f"kitti2d/{n}_2D_AP40_{level}": 0.0 for n in CLASSES for level in ("easy", "moderate", "hard")}
    summary = metric_summary({**metrics, "kitti2d/Overall_2D_AP40_moderate": 0.0}, CLASSES)
    assert summary["coco_bbox_mAP"] == 0.0 and summary["coco_Car_AP"] == 0.0 and summary["Car_2d_moderate"] == 0.0
