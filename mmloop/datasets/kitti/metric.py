"""mmdet3d's KittiMetric results as the flat summary every evaluating stage reports, its
precision-recall curves, and a prepared frame's ground truth as the BEV pictures count it."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmloop.core.stage import StageError

DIFFICULTIES = ("easy", "moderate", "hard")
#: KittiMetric's key prefix and the AP flavour we report: R40, at KITTI's official ("strict")
#: IoU thresholds (0.7 Car, 0.5 Pedestrian/Cyclist).
PREFIX = "Kitti metric/pred_instances_3d/KITTI/"


def kitti_summary(metrics: dict[str, float], classes: list[str]) -> dict[str, Any]:
    """KittiMetric's flat dict as {class: {3d|bev: {difficulty: AP}}} plus the moderate mAPs."""

    def ap(name: str) -> float:
        key = PREFIX + name
        if key not in metrics:
            raise StageError(f"KittiMetric reported no '{name}'; is the model config a KITTI config?")
        return round(float(metrics[key]), 4)

    summary: dict[str, Any] = {
        "mAP_3d_moderate": ap("Overall_3D_AP40_moderate"),
        "mAP_bev_moderate": ap("Overall_BEV_AP40_moderate"),
    }
    for name in classes:
        summary[name] = {
            kind.lower(): {level: ap(f"{name}_{kind}_AP40_{level}_strict") for level in DIFFICULTIES}
            for kind in ("3D", "BEV")
        }
    return summary


def kitti_bars(summary: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    """One plot row per class and difficulty: 3D and BEV AP."""
    return [
        {
            "class": f"{name} {level}",
            "3D AP (R40)": summary[name]["3d"][level],
            "BEV AP (R40)": summary[name]["bev"][level],
        }
        for name in classes
        for level in DIFFICULTIES
    ]


#: The registry name (mmdet3d's METRICS) of the KittiMetric that keeps its precision-recall curves.
CURVE_METRIC = "MmloopKittiMetric"
#: kitti_eval's axes: eval type 2 is 3D (1 BEV, 0 2D boxes); difficulty 1 is moderate; IoU set 0
#: the strict one. Precision is sampled at recall 0, 1/40, ..., 1; AP R40 is its mean over 1/40..1.
_EVAL_3D, _MODERATE, _STRICT, _RECALL_STEPS = 2, 1, 0, 40


def pr_evaluator(evaluator: Any) -> dict[str, Any]:
    """The model config's test evaluator (KittiMetric) as MmloopKittiMetric, which scores the same
    and also keeps the precision-recall curves its evaluation computes."""
    if not isinstance(evaluator, dict) or evaluator.get("type") not in ("KittiMetric", CURVE_METRIC):
        kind = evaluator.get("type") if isinstance(evaluator, dict) else type(evaluator).__name__
        raise StageError(f"the model config's test_evaluator is {kind!r}; data.format kitti evaluates with KittiMetric")
    _register_curve_metric()
    return {**evaluator, "type": CURVE_METRIC}


def pr_curves(evaluator: Any, classes: list[str]) -> list[dict[str, float]]:
    """After ``Runner.test()`` with ``pr_evaluator``: one row per recall point, with each class's 3D
    precision at moderate difficulty and KITTI's strict IoU (the curve AP R40 averages)."""
    metric = next((m for m in getattr(evaluator, "metrics", []) if getattr(m, "precision", None)), None)
    if metric is None:
        raise StageError("the test evaluator kept no precision-recall curves; build it from pr_evaluator(...)")
    precision = metric.precision[_EVAL_3D][:, _MODERATE, _STRICT, :]
    columns = {name: precision[list(metric.classes).index(name)] for name in classes}
    return [
        {"recall": round(step / _RECALL_STEPS, 4), **{name: round(float(p[step]), 4) for name, p in columns.items()}}
        for step in range(_RECALL_STEPS + 1)
    ]


def _register_curve_metric() -> None:
    import importlib

    from mmdet3d.evaluation.metrics import KittiMetric
    from mmdet3d.registry import METRICS

    if CURVE_METRIC in METRICS.module_dict:
        return
    kitti_eval = importlib.import_module("mmdet3d.evaluation.functional.kitti_utils.eval")

    class MmloopKittiMetric(KittiMetric):
        """KittiMetric that keeps ``precision`` {eval type: [class, difficulty, IoU set, 41]}."""

        def kitti_evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            # kitti_eval computes precision at 41 recall points in eval_class and returns only
            # their means (the APs); wrapping eval_class while it runs keeps the arrays without
            # running the evaluation a second time. 2D results (pred_instances) only add type 0.
            original = kitti_eval.eval_class
            self.precision: dict[int, Any] = {}

            def keeping(gt_annos, dt_annos, current_classes, difficulties, eval_type, *rest, **options):
                result = original(gt_annos, dt_annos, current_classes, difficulties, eval_type, *rest, **options)
                self.precision[eval_type] = result["precision"]
                return result

            kitti_eval.eval_class = keeping
            try:
                return super().kitti_evaluate(*args, **kwargs)
            finally:
                kitti_eval.eval_class = original

    METRICS.register_module(name=CURVE_METRIC, module=MmloopKittiMetric)


def bev_truth(
    info: dict[str, Any], categories: dict[str, int], classes: list[str], boxes: np.ndarray, evaluator: Any
) -> tuple[Any, np.ndarray]:
    """A prepared info-file frame's objects as ``mmloop_runtime.matching.Truth`` (KITTI's ignored
    flags, difficulty hard) and which of the model's LiDAR ``boxes`` KittiMetric would not score
    (outside the image or ``pcd_limit_range``, or under 25 px tall): what the BEV pictures count."""
    from mmloop_runtime.kitti import KITTI_PCD_LIMIT_RANGE, Calib
    from mmloop_runtime.matching import kitti_ignored_predictions, kitti_truth

    camera = info["images"]["CAM2"]
    # KittiMetric projects with CAM2's lidar2cam, R0_rect already in it: an identity R0_rect keeps it so.
    calib = Calib(P2=np.array(camera["cam2img"]), R0_rect=np.eye(4), Tr_velo_to_cam=np.array(camera["lidar2cam"]))
    names = {index: name for name, index in categories.items()}
    objects = [instance for instance in info["instances"] if instance["bbox_label"] in names]
    truth = kitti_truth(
        [names[instance["bbox_label"]] for instance in objects],
        np.array([instance["bbox_3d"] for instance in objects], np.float64).reshape(-1, 7),
        np.array([instance["truncated"] for instance in objects], np.float64),
        np.array([instance["occluded"] for instance in objects], np.int64),
        np.array([instance["bbox"] for instance in objects], np.float64).reshape(-1, 4),
        calib,
        classes,
    )
    limit = evaluator.get("pcd_limit_range", KITTI_PCD_LIMIT_RANGE)
    return truth, kitti_ignored_predictions(boxes, calib, (camera["height"], camera["width"]), limit)
