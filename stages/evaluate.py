"""Stage `evaluate`: the dataset's metric (KittiMetric for KITTI) on a prepared split, for the model `train` wrote.

Writes `metrics/eval.json` (3D and BEV AP, R40, per class and difficulty, plus mAP),
`metrics/plots/ap.json` (one bar per class and difficulty) and `metrics/plots/pr.json` (3D
precision-recall curves at moderate difficulty, one per class, from the same evaluation), read by
`dvc exp show` and `dvc plots show`, and `metrics/bev/<n>.png`: bird's-eye views of the split's
first `evaluate.bev_frames` frames (points, ground truth, the predictions scoring at least
`evaluate.bev_score_thr`, with KITTI's true/false positives and misses marked and counted), DVC
image plots that `dvc plots diff` shows side by side for two experiments.
"""

from __future__ import annotations

import tempfile

from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import built_whole, load_params, run_stage, write_json
from mmloop.datasets import dataset_format
from mmloop.openmmlab.config import require_trained_model
from mmloop.openmmlab.evaluation import bev_pictures, bev_settings


def main() -> None:
    params = load_params("evaluate")
    paths = load_paths()
    dataset = dataset_format(load_params("data"))
    split = params["split"]
    bev = bev_settings(params)
    info_file = dataset.info_file(paths.prepared, split)
    require_trained_model(paths, info_file, split)
    device = select_device(params["device"])

    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(paths.model_config))
    classes = list(cfg.class_names) if "class_names" in cfg else []
    cfg.test_dataloader.dataset.ann_file = info_file.name
    cfg.test_evaluator = dataset.pr_evaluator(cfg.test_evaluator)
    cfg.test_evaluator.ann_file = str(info_file)
    cfg.load_from = str(paths.model)
    print(f"mmloop evaluate: {paths.model} on the '{split}' split ({device})")
    # mmengine logs into its work dir; this stage declares only its metrics, so use a scratch one.
    with tempfile.TemporaryDirectory(prefix="mmloop-evaluate-") as scratch:
        cfg.work_dir = scratch
        runner = Runner.from_cfg(cfg)
        frames = len(runner.test_dataloader.dataset)
        metrics = runner.test()
        curves = dataset.pr_curves(runner.test_evaluator, classes)
        with built_whole(paths.bev) as building:
            drawn = bev_pictures(runner, cfg, classes, bev, dataset, building, str(paths.model))
    summary = dataset.metric_summary(metrics, classes)
    write_json(paths.eval, {"split": split, "frames": frames, **summary})
    write_json(paths.ap_plot, {"ap": dataset.metric_bars(summary, classes)})
    write_json(paths.pr_plot, {"pr": curves})
    moderate = ", ".join(f"{name} {summary[name]['3d']['moderate']:.1f}" for name in classes)
    print(
        f"mmloop evaluate: 3D AP (R40, moderate): {moderate}; mAP {summary['mAP_3d_moderate']:.1f}; "
        f"wrote {paths.eval}, PR curves in {paths.pr_plot} and {drawn} BEV pictures "
        f"(score >= {bev.score_thr:g}) in {paths.bev}/"
    )


if __name__ == "__main__":
    run_stage("evaluate", main)
