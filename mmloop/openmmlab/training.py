"""mmengine's Runner for `train`: a resumable work dir per run, dvclive curves, the saved model."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, built_whole, written_whole


def run_id(config_text: str, prepared: Path, load_from: str | None, host: str, data_files: str = "*.pkl") -> str:
    """Names the work dir of one run: same config, data, start weights and host settings
    (`train.deterministic`, `train.threads`: they change the bits), same dir (resumable);
    anything else gets a fresh dir, so a sweep never resumes another run's checkpoints. The data
    are the prepared files matching `data_files` (mmdet3d's info files; the camera loop's COCO files)."""
    digest = hashlib.md5(config_text.encode())
    digest.update(host.encode())
    inputs = sorted(prepared.glob(data_files)) + ([Path(load_from)] if load_from else [])
    for path in inputs:
        digest.update(path.name.encode())
        digest.update(hashlib.md5(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def runner_settings(cfg: Any, work_dir: Path, load_from: str | None, log_interval: int) -> None:
    """What makes the Runner resumable and observable; none of it changes the model."""
    import mmloop.openmmlab.dvclive  # noqa: F401  (registers MmloopDVCLiveVisBackend)

    resume = (work_dir / "last_checkpoint").is_file()
    cfg.work_dir = str(work_dir)
    # mmengine resumes from `load_from` when both are set: warm-start only on a fresh run.
    cfg.resume = resume
    cfg.load_from = None if resume else load_from
    # Two kept: mmengine removes the oldest checkpoint *before* it writes the new one, so with one
    # kept a kill during that write leaves last_checkpoint naming a deleted file and nothing to
    # resume from; with two, it names the previous epoch's, which is whole.
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2)
    # Every metric against the iteration (val mAP included), averaged over the logging interval.
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=log_interval, log_metric_by_epoch=False)
    cfg.log_processor = dict(type="LogProcessor", window_size=log_interval, by_epoch=True)
    cfg.visualizer.vis_backends = [
        dict(type="LocalVisBackend"),
        dict(type="MmloopDVCLiveVisBackend", save_dir=str(work_dir / "dvclive"), resume=resume),
    ]


def check_start_weights(cfg: Any, classes: list[str], scope: str = "mmdet3d") -> None:
    """The checkpoint the Runner will load, read weights-only and checked before it builds anything:
    the run's last epoch when resuming, else `model.load_from` against the model it warm-starts
    (built from the registry of `scope`: mmdet3d, or mmdet for the camera loop)."""
    import importlib

    from mmloop.core.checkpoint import check_warm_start, read_checkpoint

    work_dir = Path(cfg.work_dir)
    if cfg.resume:
        last = Path((work_dir / "last_checkpoint").read_text().strip())
        try:
            read_checkpoint(last, f"{work_dir / 'last_checkpoint'}")
        except StageError as error:
            raise StageError(f"{error}; or delete {work_dir} to start this run over") from None
    elif cfg.load_from:
        checkpoint = read_checkpoint(cfg.load_from, "model.load_from")
        importlib.import_module(f"{scope}.utils").register_all_modules()
        model_state = importlib.import_module(f"{scope}.registry").MODELS.build(cfg.model).state_dict()
        check_warm_start(checkpoint, cfg.load_from, "model.load_from", model_state, classes)


def resume_note(work_dir: Path, epochs: int) -> str:
    """What resuming will do: finish an interrupted run, or just write out a finished one."""
    last = Path((work_dir / "last_checkpoint").read_text().strip()).name  # e.g. epoch_7.pth
    done = last.removeprefix("epoch_").removesuffix(".pth")
    if done.isdigit() and int(done) >= epochs:
        return f"{work_dir} already holds all {epochs} epochs ({last}); writing its model, no training"
    return f"resuming the interrupted run in {work_dir} from {last}"


def save_model(runner: Any, classes: list[str], path: Path) -> None:
    """Weights and class names only (no optimizer state): what evaluate, export and users load."""
    import torch
    from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu

    checkpoint = {
        "meta": {"dataset_meta": {"classes": list(classes)}, "epoch": runner.epoch, "iter": runner.iter},
        "state_dict": weights_to_cpu(get_state_dict(runner.model)),
    }
    # Through a file object: given a path, torch names the zip records after the (temporary,
    # random) file name, and the same weights would get a different md5 each run.
    with written_whole(path) as tmp, tmp.open("wb") as handle:
        torch.save(checkpoint, handle)


def publish_curves(live_dir: Path, target: Path) -> None:
    """dvclive's files of this run, swapped in whole."""
    with built_whole(target) as staging:
        shutil.copytree(live_dir, staging, dirs_exist_ok=True)
        (staging / "plots" / "metrics").mkdir(parents=True, exist_ok=True)  # none when nothing was logged


def finish_run(work_dir: Path) -> None:
    """Remove a finished run's work dir: its checkpoints only serve resuming, and its logs carry
    timestamps, which would give `work/train` another hash in dvc.lock on every machine. The
    (empty) parent stays, as the stage's `persist` output."""
    shutil.rmtree(work_dir)
    work_dir.parent.mkdir(parents=True, exist_ok=True)
