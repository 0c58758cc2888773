"""Stage `train`: mmengine's Runner on the prepared data, resumable, logging to dvclive.

Reads params `model` and `train`. Writes the final weights and the exact config they were
trained with (`models/model.pth`, `models/model.py`, runnable by mmdet3d's own tools/test.py),
the training curves (`metrics/train/`), and keeps mmengine's work dir in `work/train/<run>/`
(a DVC `persist` output) so a killed run resumes from its last epoch checkpoint; a finished run's
folder is removed once its model is written.

With `train.launcher` `pytorch` or `slurm` this process starts the ranks (torchrun, or srun inside
a Slurm job), each of which runs this stage again as one rank; rank 0 alone writes the outputs.
"""

from __future__ import annotations

import copy

from mmloop.core.determinism import host_params
from mmloop.core.device import select_device
from mmloop.core.launch import current_rank, is_main_process, launch_params, run_ranks
from mmloop.core.paths import load_paths
from mmloop.core.stage import load_params, run_stage, written_whole
from mmloop.datasets import class_counts, dataset_format
from mmloop.openmmlab.cfg_options import cfg_options, check_params
from mmloop.openmmlab.config import load_config
from mmloop.openmmlab.distributed import distributed_settings, init_process_group, leave_process_group
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
    model = load_params("model")
    train = load_params("train")
    paths = load_paths()
    cfg = load_config(model["config"])
    train_infos = dataset_format(load_params("data")).info_file(paths.prepared, "train")
    check_params(model, train, cfg, class_counts(train_infos))
    launch = launch_params(train)
    device = select_device(train["device"])
    rank = current_rank(launch)

    options = cfg_options(cfg, model, train, paths.prepared, device)
    cfg.merge_from_dict(options, allow_list_keys=True)
    model_cfg = copy.deepcopy(cfg)  # the config as trained, before the Runner's settings
    # The host settings and the number of ranks change the bits: a run of other settings never
    # resumes this one's checkpoints.
    host = "deterministic={} threads={} ranks={}".format(*host_params(train), launch.world_size)
    work_dir = paths.train_work / run_id(cfg.pretty_text, paths.prepared, model.get("load_from"), host)
    runner_settings(cfg, work_dir, model.get("load_from"), int(train["log_interval"]))
    if rank is None:  # this process, or the one that starts the ranks: checked once
        check_start_weights(cfg, model["classes"])  # before any rank or the Runner starts
        if launch.launcher != "none":
            run_ranks(launch, "stages.train")  # each rank runs this stage again
            return
    main_process = is_main_process(launch)
    if rank is not None:
        backend = init_process_group(launch, rank, device)
        distributed_settings(cfg, launch, device)
        print(f"mmloop train: rank {rank.rank} of {rank.world_size} ({backend}, local rank {rank.local_rank})")

    if main_process:
        ranks = f", {launch.world_size} ranks x batch {train['batch_size']}" if rank else ""
        print(f"mmloop train: {model['config']} on {device}, {train['epochs']} epochs{ranks}, work dir {work_dir}")
        for key, value in options.items():
            print(f"mmloop train:   --cfg-options {key}={value}")
        if cfg.resume:
            print(f"mmloop train: {resume_note(work_dir, int(train['epochs']))}")
        elif cfg.load_from:
            print(f"mmloop train: warm start from {cfg.load_from}")

    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.train()
    if rank is not None:
        leave_process_group()
    if not main_process:
        return
    save_model(runner, model["classes"], paths.model)
    with written_whole(paths.model_config) as tmp:
        tmp.write_text(model_cfg.pretty_text)  # what Config.dump writes for a .py file
    publish_curves(work_dir / "dvclive", paths.train_curves)
    finish_run(work_dir)
    print(
        f"mmloop train: wrote {paths.model} ({paths.model.stat().st_size / 1e6:.1f} MB) and "
        f"{paths.model_config}; curves in {paths.train_curves}"
    )


if __name__ == "__main__":
    run_stage("train", main)
