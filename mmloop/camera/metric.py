"""The camera loop's evaluation: mmdet's CocoMetric and KITTI's 2D AP, as the flat summary evaluate_2d reports.

KITTI's 2D AP is mmdet3d's implementation of KITTI's devkit (`kitti_utils.eval.eval_class`, the function
`kitti_eval(..., eval_types=['bbox'])` runs), fed from the COCO file prepare_2d wrote: boxes with
KITTI's truncation and occlusion (difficulty), DontCare regions and KITTI's similar classes (Van for
Car, Person_sitting for Pedestrian) as the crowd boxes they are stored as. We call `eval_class`, not
`kitti_eval`, because `kitti_eval` reads `alpha[0]` of the first frame's ground truth (a frame
without objects fails) and returns only the APs, not the precision-recall curves it computes.

`Kitti2DMetric` is an mmengine metric, run by `Runner.test()` beside CocoMetric on the same
predictions, which it keeps for the pictures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmloop.camera.coco import DIFFICULTIES, read_coco
from mmloop.core.stage import StageError

#: The classes KITTI's evaluation scores (mmdet3d's clean_data knows these three), with their IoU
#: thresholds for 2D boxes (the devkit's "strict" set).
MIN_OVERLAP = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
KITTI_CLASS_INDEX = {"Car": 0, "Pedestrian": 1, "Cyclist": 2}
#: Precision is sampled at recall 0, 1/40, ..., 1; AP R40 is its mean over 1/40..1.
RECALL_STEPS = 40
METRIC = "MmloopKitti2DMetric"
COCO_PREFIX = "coco/"
KITTI_PREFIX = "kitti2d/"
COCO_KEYS = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")


def kitti_classes(classes: list[str]) -> list[str]:
    """The model's classes KITTI's 2D AP scores (others get COCO's AP only)."""
    return [name for name in classes if name in MIN_OVERLAP]


def ground_truth(coco: dict[str, Any]) -> dict[int, dict[str, np.ndarray]]:
    """Each image's objects as KITTI's evaluation takes them (`name`, `bbox` as x1 y1 x2 y2,
    `truncated`, `occluded`, `alpha`), from a prepare_2d COCO file. A DontCare region, stored once
    per category, is one region again."""
    names = {category["id"]: category["name"] for category in coco["categories"]}
    rows: dict[int, list[tuple[str, tuple[float, ...], float, int]]] = {image["id"]: [] for image in coco["images"]}
    seen: set[tuple[int, str, tuple[float, ...]]] = set()
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        corners = (x, y, x + w, y + h)
        name = ann["kitti_type"] if ann["iscrowd"] else names[ann["category_id"]]
        if ann["iscrowd"]:
            if (ann["image_id"], name, corners) in seen:
                continue
            seen.add((ann["image_id"], name, corners))
        rows[ann["image_id"]].append((name, corners, float(ann["truncated"]), int(ann["occluded"])))
    return {image_id: _gt_arrays(objects) for image_id, objects in rows.items()}


def _gt_arrays(objects: list[tuple[str, tuple[float, ...], float, int]]) -> dict[str, np.ndarray]:
    return {
        "name": np.array([o[0] for o in objects], dtype=object),
        "bbox": np.array([o[1] for o in objects], dtype=np.float64).reshape(-1, 4),
        "truncated": np.array([o[2] for o in objects], dtype=np.float64),
        "occluded": np.array([o[3] for o in objects], dtype=np.int64),
        "alpha": np.full(len(objects), -10.0),  # -10: no orientation (2D boxes only)
    }


def detections(bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, np.ndarray]:
    """A frame's predictions (x1 y1 x2 y2 in image pixels, score, class index) as KITTI's evaluation takes them."""
    return {
        "name": np.array([classes[int(label)] for label in labels], dtype=object),
        "bbox": np.asarray(bboxes, dtype=np.float64).reshape(-1, 4),
        "score": np.asarray(scores, dtype=np.float64).reshape(-1),
        "alpha": np.full(len(labels), -10.0),
    }


def kitti_2d_ap(
    gt_annos: list[dict[str, np.ndarray]], dt_annos: list[dict[str, np.ndarray]], classes: list[str]
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """KITTI's 2D AP (R40) {class: {difficulty: AP}}, and the precision [class, difficulty, 41] behind it."""
    from mmdet3d.evaluation.functional.kitti_utils.eval import eval_class, get_mAP40

    scored = kitti_classes(classes)
    if not scored or not gt_annos:
        return {}, np.zeros((0, len(DIFFICULTIES), RECALL_STEPS + 1))
    # [IoU set, eval type (0: 2D boxes, 1: BEV, 2: 3D), class]: only the 2D row is read.
    min_overlaps = np.zeros((1, 3, len(scored)))
    min_overlaps[0, :, :] = [MIN_OVERLAP[name] for name in scored]
    result = eval_class(
        gt_annos,
        dt_annos,
        [KITTI_CLASS_INDEX[name] for name in scored],
        list(range(len(DIFFICULTIES))),
        0,
        min_overlaps,
    )
    precision = result["precision"][:, :, 0, :]
    ap = get_mAP40(precision)
    table = {
        name: {level: round(float(ap[i, j]), 4) for j, level in enumerate(DIFFICULTIES)}
        for i, name in enumerate(scored)
    }
    return table, precision


def metric_class() -> type:
    """`MmloopKitti2DMetric`, registered in mmdet's METRICS (built on first use: it imports mmengine)."""
    from mmdet.registry import METRICS
    from mmengine.evaluator import BaseMetric

    if METRIC in METRICS.module_dict:
        return METRICS.module_dict[METRIC]

    class MmloopKitti2DMetric(BaseMetric):
        """KITTI's 2D AP of the predictions, against the COCO file prepare_2d wrote (`ann_file`).
        Keeps `predictions` {image id: (boxes, scores, labels)} and `precision` for evaluate_2d."""

        default_prefix = KITTI_PREFIX.rstrip("/")

        def __init__(self, ann_file: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ann_file = ann_file
            self.predictions: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            self.precision = np.zeros((0, len(DIFFICULTIES), RECALL_STEPS + 1))

        def process(self, data_batch: Any, data_samples: list[dict[str, Any]]) -> None:
            for sample in data_samples:
                pred = sample["pred_instances"]
                self.results.append(
                    (
                        int(sample["img_id"]),
                        pred["bboxes"].cpu().numpy(),
                        pred["scores"].cpu().numpy(),
                        pred["labels"].cpu().numpy(),
                    )
                )

        def compute_metrics(self, results: list[Any]) -> dict[str, float]:
            classes = list(self.dataset_meta["classes"])
            truth = ground_truth(read_coco(self.ann_file))
            self.predictions = {image_id: (boxes, scores, labels) for image_id, boxes, scores, labels in results}
            unknown = sorted(set(self.predictions) - set(truth))
            if unknown:
                raise StageError(f"{self.ann_file}: has no image {unknown[0]}; the test set and the file disagree")
            order = sorted(self.predictions)
            gt_annos = [truth[image_id] for image_id in order]
            dt_annos = [detections(*self.predictions[image_id], classes) for image_id in order]
            table, self.precision = kitti_2d_ap(gt_annos, dt_annos, classes)
            flat = {f"{name}_2D_AP40_{level}": ap for name, levels in table.items() for level, ap in levels.items()}
            if table:
                flat["Overall_2D_AP40_moderate"] = round(float(np.mean([t["moderate"] for t in table.values()])), 4)
            return flat

    METRICS.register_module(name=METRIC, module=MmloopKitti2DMetric)
    return MmloopKitti2DMetric


def test_evaluator(coco_evaluator: Any, ann_file: str) -> list[dict[str, Any]]:
    """The model config's CocoMetric (per-class APs on, at `ann_file`) and the KITTI 2D metric beside it."""
    if not isinstance(coco_evaluator, dict) or coco_evaluator.get("type") != "CocoMetric":
        kind = coco_evaluator.get("type") if isinstance(coco_evaluator, dict) else type(coco_evaluator).__name__
        raise StageError(f"the model config's test_evaluator is {kind!r}; the camera loop evaluates with CocoMetric")
    metric_class()
    return [{**coco_evaluator, "ann_file": ann_file, "classwise": True}, {"type": METRIC, "ann_file": ann_file}]


def kept(evaluator: Any) -> Any:
    """After `Runner.test()`: the KITTI 2D metric, with its predictions and precision."""
    metric = next((m for m in getattr(evaluator, "metrics", []) if hasattr(m, "predictions")), None)
    if metric is None:
        raise StageError("the test evaluator has no KITTI 2D metric; build it from test_evaluator(...)")
    return metric


def _percent(value: Any) -> float | None:
    """CocoMetric's [0, 1] (rounded to 3 places) as a percentage; nan (no boxes of a class) as null."""
    value = float(value)
    return None if math.isnan(value) or value < 0 else round(100 * value, 1)


def metric_summary(metrics: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Both metrics as one flat dict (so `dvc exp show` has a column each): COCO's bbox mAPs and
    per-class AP (0.5:0.95), KITTI's 2D AP (R40) per class and difficulty, and their moderate mean."""
    # CocoMetric reports nothing at all when no image has a prediction (an untrained model): AP 0.
    none_found = not any(key.startswith(COCO_PREFIX) for key in metrics)
    missing = [key for key in COCO_KEYS if COCO_PREFIX + key not in metrics]
    if missing and not none_found:
        raise StageError(f"CocoMetric reported no '{missing[0]}'; is the model config's test_evaluator a CocoMetric?")
    summary: dict[str, Any] = {
        f"coco_{key}": 0.0 if none_found else _percent(metrics[COCO_PREFIX + key]) for key in COCO_KEYS
    }
    for name in classes:
        ap = metrics.get(f"{COCO_PREFIX}{name}_precision", 0.0 if none_found else float("nan"))
        summary[f"coco_{name}_AP"] = _percent(ap)
    scored = kitti_classes(classes)
    for name in scored:
        for level in DIFFICULTIES:
            summary[f"{name}_2d_{level}"] = round(float(metrics[f"{KITTI_PREFIX}{name}_2D_AP40_{level}"]), 2)
    if scored:
        summary["mAP_2d_moderate"] = round(float(metrics[f"{KITTI_PREFIX}Overall_2D_AP40_moderate"]), 2)
    return summary


def metric_bars(summary: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    """One plot row per class and difficulty: KITTI's 2D AP (R40)."""
    return [
        {"class": f"{name} {level}", "2D AP (R40)": summary[f"{name}_2d_{level}"]}
        for name in kitti_classes(classes)
        for level in DIFFICULTIES
    ]


def pr_curves(precision: np.ndarray, classes: list[str]) -> list[dict[str, float]]:
    """One row per recall point: each class's 2D precision at moderate difficulty (the curve AP R40 averages)."""
    scored = kitti_classes(classes)
    moderate = DIFFICULTIES.index("moderate")
    return [
        {
            "recall": round(step / RECALL_STEPS, 4),
            **{name: round(float(precision[i, moderate, step]), 4) for i, name in enumerate(scored)},
        }
        for step in range(RECALL_STEPS + 1)
    ]
