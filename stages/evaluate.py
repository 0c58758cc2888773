"""Stage `evaluate`: mmdet3d's KittiMetric on a prepared split, for the model `train` wrote.

Writes `metrics/eval.json` (3D and BEV AP, R40, per class and difficulty, plus mAP) and
`metrics/plots/ap.json` (one bar per class and difficulty), both read by `dvc exp show` and
`dvc plots show`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from stages.common.kitti_metric import DIFFICULTIES, kitti_summary
from stages.common.mm_runtime import select_device
from stages.common.model_config import MODEL, MODEL_CONFIG, require_trained_model
from stages.common.stage import load_params, run_stage, write_json

EVAL = Path("metrics/eval.json")
AP_PLOT = Path("metrics/plots/ap.json")


def ap_bars(summary: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    return [{"class": f"{name} {level}", "3D AP (R40)": summary[name]["3d"][level],
             "BEV AP (R40)": summary[name]["bev"][level]}
            for name in classes for level in DIFFICULTIES]


def main() -> None:
    params = load_params("evaluate")
    split = params["split"]
    info_file = require_trained_model(split)
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
