"""mmdet3d's KittiMetric results as the flat summary every evaluating stage reports."""

from __future__ import annotations

from typing import Any

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
