"""Stage `evaluate`: mmdet3d's KittiMetric on a prepared split, for the model `train` wrote.

Writes `metrics/eval.json` (3D and BEV AP, R40, per class and difficulty, plus mAP),
`metrics/plots/ap.json` (one bar per class and difficulty), both read by `dvc exp show` and
`dvc plots show`, and `metrics/bev/<frame>.png`: bird's-eye views of the split's first
`evaluate.bev_frames` frames (points, ground truth, predictions with scores), DVC image plots that
`dvc plots diff` shows side by side for two experiments.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from stages.common.kitti_metric import DIFFICULTIES, kitti_summary
from stages.common.mm_runtime import select_device
from stages.common.model_config import MODEL, MODEL_CONFIG, require_trained_model
from stages.common.stage import StageError, built_whole, load_params, run_stage, write_json

EVAL = Path("metrics/eval.json")
AP_PLOT = Path("metrics/plots/ap.json")
BEV_DIR = Path("metrics/bev")


def ap_bars(summary: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    return [{"class": f"{name} {level}", "3D AP (R40)": summary[name]["3d"][level],
             "BEV AP (R40)": summary[name]["bev"][level]}
            for name in classes for level in DIFFICULTIES]


def bev_pictures(runner: Any, cfg: Any, classes: list[str], frames: int, out: Path) -> int:
    """The first `frames` frames of the test loader drawn from above by mmloop_runtime's renderer:
    the model's predictions (as Runner.test() made them) over the ground truth."""
    import torch

    from mmloop_runtime.bev import render_bev, save_bev

    point_cloud_range = list(cfg.model.data_preprocessor.voxel_layer.point_cloud_range)
    drawn = 0
    with torch.no_grad():
        for data in runner.test_dataloader:
            if drawn >= frames:
                break
            sample = runner.model.test_step(data)[0]
            pred, truth = sample.pred_instances_3d, sample.eval_ann_info
            scored = truth["gt_labels_3d"] >= 0  # -1: DontCare and classes the model does not detect
            image = render_bev(
                data["inputs"]["points"][0].numpy(), point_cloud_range, classes,
                boxes=pred.bboxes_3d.tensor.cpu().numpy(), scores=pred.scores_3d.cpu().numpy(),
                labels=pred.labels_3d.cpu().numpy(),
                gt_boxes=truth["gt_bboxes_3d"].tensor.numpy()[scored], gt_labels=truth["gt_labels_3d"][scored],
                title=f"{sample.sample_idx:06d}  {MODEL} (white: ground truth)", pixels_per_metre=10)
            save_bev(image, out / f"{sample.sample_idx:06d}.png")
            drawn += 1
    return drawn


def main() -> None:
    params = load_params("evaluate")
    split = params["split"]
    frames_to_draw = params.get("bev_frames", 0)
    if not isinstance(frames_to_draw, int) or isinstance(frames_to_draw, bool) or frames_to_draw < 0:
        raise StageError(f"params.yaml: evaluate.bev_frames is {frames_to_draw!r}; use a whole number >= 0 "
                         f"(frames drawn as BEV pictures)")
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
        with built_whole(BEV_DIR) as building:
            drawn = bev_pictures(runner, cfg, classes, frames_to_draw, building)
    summary = kitti_summary(metrics, classes)
    report = {"split": split, "frames": frames, **summary}
    write_json(EVAL, report)
    write_json(AP_PLOT, {"ap": ap_bars(summary, classes)})
    moderate = ", ".join(f"{name} {summary[name]['3d']['moderate']:.1f}" for name in classes)
    print(f"mmloop evaluate: 3D AP (R40, moderate): {moderate}; mAP {summary['mAP_3d_moderate']:.1f}; "
          f"wrote {EVAL} and {drawn} BEV pictures in {BEV_DIR}/")


if __name__ == "__main__":
    run_stage("evaluate", main)
