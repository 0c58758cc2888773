"""Stage `evaluate_2d` (camera loop): mmdet's CocoMetric and KITTI's 2D AP on a prepared split, for train_2d's model.

Reads params `data.root` and `evaluate`. Runs `Runner.test()` once with both metrics on the same
predictions (mmloop/camera/metric.py) and writes `metrics/eval.json` (flat: COCO bbox mAP, mAP50,
mAP75 and AP per class; KITTI 2D AP R40 per class and difficulty, `Car_2d_moderate`, and their
moderate mean), `metrics/plots/ap.json` (one bar per class and difficulty), `metrics/plots/pr.json`
(KITTI's 2D precision-recall at moderate difficulty) and `metrics/pictures/<frame>.png`: the split's
first `evaluate.picture_frames` images with ground truth and the predictions scoring at least
`evaluate.picture_score_thr` (DVC image plots).
"""

from __future__ import annotations

import tempfile

from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import built_whole, dataset_root, load_params, run_stage, write_json
from mmloop.openmmlab.config import require_trained_model


def main() -> None:
    # numpy: only after run_stage has pinned the host
    from mmloop.camera.coco import ann_file, read_coco
    from mmloop.camera.metric import kept, metric_bars, metric_summary, pr_curves, test_evaluator
    from mmloop.camera.pictures import picture_settings, write_pictures

    params = load_params("evaluate")
    root = dataset_root(load_params("data"))
    paths = load_paths()
    split = params["split"]
    frames, score_thr = picture_settings(params)
    coco_file = ann_file(paths.prepared, split)
    require_trained_model(paths, coco_file, split, train_stage="train_2d", prepare_stage="prepare_2d")
    device = select_device(params["device"])

    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(paths.model_config))
    classes = list(cfg.test_dataloader.dataset.metainfo.classes)
    cfg.test_dataloader.dataset.ann_file = str(coco_file)
    cfg.test_dataloader.dataset.data_prefix = {"img": str(root).rstrip("/") + "/"}
    cfg.test_evaluator = test_evaluator(cfg.test_evaluator, str(coco_file))
    cfg.load_from = str(paths.model)
    print(f"mmloop evaluate_2d: {paths.model} on the '{split}' split ({device})")
    # mmengine logs into its work dir; this stage declares only its metrics, so use a scratch one.
    with tempfile.TemporaryDirectory(prefix="mmloop-evaluate_2d-") as scratch:
        cfg.work_dir = scratch
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    kitti = kept(runner.test_evaluator)
    summary = metric_summary(metrics, classes)
    coco = read_coco(coco_file)
    write_json(paths.eval, {"split": split, "images": len(coco["images"]), **summary})
    write_json(paths.ap_plot, {"ap": metric_bars(summary, classes)})
    write_json(paths.pr_plot, {"pr": pr_curves(kitti.precision, classes)})
    with built_whole(paths.bev) as building:
        drawn = write_pictures(coco, kitti.predictions, classes, root, building, frames, score_thr)
    kitti_line = ", ".join(
        f"{name} {summary[f'{name}_2d_moderate']:.1f}" for name in classes if f"{name}_2d_moderate" in summary
    )
    print(
        f"mmloop evaluate_2d: KITTI 2D AP (R40, moderate): {kitti_line or 'no KITTI class'}; COCO bbox mAP "
        f"{summary['coco_bbox_mAP']}, mAP50 {summary['coco_bbox_mAP_50']}; wrote {paths.eval}, {paths.ap_plot} and "
        f"{drawn} pictures (score >= {score_thr:g}) in {paths.bev}/"
    )


if __name__ == "__main__":
    run_stage("evaluate_2d", main)
