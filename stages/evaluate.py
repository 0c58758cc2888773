"""Stage `evaluate`: mmdet3d's KittiMetric on a prepared split, for the model `train` wrote.

Writes `metrics/eval.json` (3D and BEV AP, R40, per class and difficulty, plus mAP) and
`metrics/plots/ap.json` (one bar per class and difficulty), both read by `dvc exp show` and
`dvc plots show`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from stages.common.mm_runtime import select_device
from stages.common.model_config import MODEL, MODEL_CONFIG, PREPARED
from stages.common.stage import StageError, load_params, run_stage, write_json

EVAL = Path("metrics/eval.json")
AP_PLOT = Path("metrics/plots/ap.json")
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


def ap_bars(summary: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    return [{"class": f"{name} {level}", "3D AP (R40)": summary[name]["3d"][level],
             "BEV AP (R40)": summary[name]["bev"][level]}
            for name in classes for level in DIFFICULTIES]


def main() -> None:
    params = load_params("evaluate")
    split = params["split"]
    info_file = PREPARED / f"kitti_infos_{split}.pkl"
    for path, fix in ((MODEL, "run `dvc repro train`"), (MODEL_CONFIG, "run `dvc repro train`"),
                      (info_file, f"add '{split}' to data.splits and run `dvc repro prepare`")):
        if not path.is_file():
            raise StageError(f"{path}: not found; {fix}")
    device = select_device(params["device"])

    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(MODEL_CONFIG))
    classes = list(cfg.class_names) if "class_names" in cfg else []
    cfg.test_dataloader.dataset.ann_file = info_file.name
    cfg.test_evaluator.ann_file = str(info_file)
    cfg.load_from = str(MODEL)
    print(f"mmloop evaluate: {MODEL} on the '{split}' split ({device})")
    # mmengine logs into its work dir; this stage declares only its metrics, so use a scratch one.
    with tempfile.TemporaryDirectory(prefix="mmloop-evaluate-") as scratch:
        cfg.work_dir = scratch
        runner = Runner.from_cfg(cfg)
        frames = len(runner.test_dataloader.dataset)
        metrics = runner.test()
    summary = kitti_summary(metrics, classes)
    report = {"split": split, "frames": frames, **summary}
    write_json(EVAL, report)
    write_json(AP_PLOT, {"ap": ap_bars(summary, classes)})
    moderate = ", ".join(f"{name} {summary[name]['3d']['moderate']:.1f}" for name in classes)
    print(f"mmloop evaluate: 3D AP (R40, moderate): {moderate}; mAP {summary['mAP_3d_moderate']:.1f}; "
          f"wrote {EVAL}")


if __name__ == "__main__":
    run_stage("evaluate", main)
