"""Stage `train_2d` (camera loop): mmengine's Runner on prepare_2d's COCO files, resumable, logging to dvclive.

Reads params `data.root`, `model` and `train`. The model config (an mmdet one, `model.config`) gets
the params as cfg-options (mmloop/camera/config.py: classes, images and COCO files, input size,
epochs, lr, batch size), printed so a run can be repeated with mmdet's tools/train.py. Warm-starts
from `model.load_from` (weights only; null trains from scratch), checked against the model first.
Writes `models/model.pth` (weights and class names), `models/model.py` (the config as trained) and the
curves (`metrics/train/`); mmengine's work dir `work/train/<run>/` lets a killed run resume from its
last epoch, and goes once the model is written (mmloop/openmmlab/training.py, as the LiDAR loop).
"""

from __future__ import annotations

import copy

from mmloop.core.determinism import host_params
from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError, dataset_root, load_params, run_stage, written_whole
from mmloop.openmmlab.config import load_config
from mmloop.openmmlab.training import (
    check_start_weights,
    finish_run,
    publish_curves,
    resume_note,
    run_id,
    runner_settings,
    save_model,
)


def main() -> None:
    # numpy (KITTI's readers): only after run_stage has pinned the host
    from mmloop.camera.coco import ann_file, check_classes, class_counts
    from mmloop.camera.config import cfg_options, check_params

    data = load_params("data")
    model = load_params("model")
    train = load_params("train")
    paths = load_paths()
    root = dataset_root(data)
    check_classes(model["classes"], list(data["known_classes"]))
    val_file = ann_file(paths.prepared, "val")
    if not val_file.is_file():
        raise StageError(f"{val_file}: not found (training validates on it); add 'val' to data.splits, run prepare_2d")
    check_params(model, train, class_counts(ann_file(paths.prepared, "train")))
    cfg = load_config(model["config"])
    device = select_device(train["device"])

    options = cfg_options(cfg, model, train, str(root), paths.prepared, device)
    cfg.merge_from_dict(options, allow_list_keys=True)
    model_cfg = copy.deepcopy(cfg)  # the config as trained, before the Runner's settings
    host = "deterministic={} threads={} ranks=1".format(*host_params(train))
    load_from = model.get("load_from")
    work_dir = paths.train_work / run_id(cfg.pretty_text, paths.prepared, load_from, host, data_files="*.json")
    runner_settings(cfg, work_dir, load_from, int(train["log_interval"]))
    check_start_weights(cfg, model["classes"], scope="mmdet")  # before the Runner builds anything

    print(f"mmloop train_2d: {model['config']} on {device}, {train['epochs']} epochs, work dir {work_dir}")
    for key, value in options.items():
        print(f"mmloop train_2d:   --cfg-options {key}={value}")
    if cfg.resume:
        print(f"mmloop train_2d: {resume_note(work_dir, int(train['epochs']))}")
    elif cfg.load_from:
        print(f"mmloop train_2d: warm start from {cfg.load_from}")
    else:
        print("mmloop train_2d: from scratch (model.load_from: null)")

    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.train()
    save_model(runner, model["classes"], paths.model)
    with written_whole(paths.model_config) as tmp:
        tmp.write_text(model_cfg.pretty_text)  # what Config.dump writes for a .py file
    publish_curves(work_dir / "dvclive", paths.train_curves)
    finish_run(work_dir)
    print(
        f"mmloop train_2d: wrote {paths.model} ({paths.model.stat().st_size / 1e6:.1f} MB) and "
        f"{paths.model_config}; curves in {paths.train_curves}"
    )


if __name__ == "__main__":
    run_stage("train_2d", main)
