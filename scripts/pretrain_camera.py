"""Pretrain the camera detector on a larger generated sample: the checkpoint the camera loop warm-starts from.

    python scripts/pretrain_camera.py --out DIR [--frames 1200] [--seed 7] [--epochs 40] [--lr 0.002]
    python scripts/pretrain_camera.py --out DIR --snapshot    # the latest epoch so far, as weights only

No weights can be downloaded, so the pretrained checkpoint comes from our own data: the sample generator
with another seed (`python -m sample_data --out DIR/data --frames N --seed S`, so no frame of the
sample's val split is seen), then the camera loop's own stages (prepare_2d, train_2d, evaluate_2d) run
in `DIR/run` with the pipeline's params.yaml, `data.root` at that sample, training from scratch for
`--epochs`. A killed run resumes where it stopped (train_2d's work dir); `--snapshot` turns the last
epoch checkpoint written so far into a usable one at any time. The result is weights and class names
only (train_2d's `save_model`), as `checkpoints/` holds them:

    cp DIR/yolox-nano_kitti-camera.pth checkpoints/ && dvc add checkpoints && dvc push checkpoints.dvc
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "kitti-camera"
CHECKPOINT_NAME = "yolox-nano_kitti-camera.pth"


def run_params(args: argparse.Namespace, data: Path) -> dict:
    """The camera pipeline's params, at the generated data, from scratch, with the pretraining schedule."""
    params = yaml.safe_load((PIPELINE / "params.yaml").read_text())
    params["data"]["root"] = str(data)
    params["model"]["config"] = str((PIPELINE / params["model"]["config"]).resolve())
    params["model"]["load_from"] = None
    params["train"].update(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_interval=args.val_interval,
        log_interval=args.log_interval,
        threads=args.threads,
    )
    params["evaluate"]["picture_frames"] = 8
    return params


def stage(name: str, run: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(f"pretrain_camera: python -m stages.{name} in {run}", flush=True)
    subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=run, env=env, check=True)


def latest_epoch(run: Path) -> Path | None:
    """The newest epoch checkpoint train_2d's Runner has written (work/train/<run id>/epoch_<n>.pth)."""
    found = [
        (int(m.group(1)), p) for p in run.glob("work/train/*/epoch_*.pth") if (m := re.search(r"epoch_(\d+)", p.name))
    ]
    return max(found)[1] if found else None


def snapshot(out: Path) -> Path:
    """The latest epoch checkpoint as weights and classes only (what train_2d's model.pth holds)."""
    from mmloop.core.checkpoint import read_checkpoint

    run = out / "run"
    source = latest_epoch(run)
    if source is None:
        raise SystemExit(f"pretrain_camera: no epoch checkpoint under {run}/work/train yet")
    import torch

    checkpoint = read_checkpoint(source, "the pretraining run")
    classes = yaml.safe_load((run / "params.yaml").read_text())["model"]["classes"]
    meta = checkpoint.get("meta") or {}
    weights = {
        "meta": {"dataset_meta": {"classes": list(classes)}, "epoch": meta.get("epoch"), "iter": meta.get("iter")},
        "state_dict": checkpoint["state_dict"],
    }
    target = out / CHECKPOINT_NAME
    partial = target.with_suffix(".tmp")
    with partial.open("wb") as handle:
        torch.save(weights, handle)
    partial.replace(target)
    print(f"pretrain_camera: wrote {target} from {source} (epoch {meta.get('epoch')}, iteration {meta.get('iter')})")
    return target


def pretrain(args: argparse.Namespace) -> None:
    out = args.out.resolve()
    data, run = out / "data", out / "run"
    if not data.is_dir():
        command = [sys.executable, "-m", "sample_data", "--out", str(data), "--frames", str(args.frames)]
        command += ["--seed", str(args.seed), "--val-fraction", str(args.val_fraction)]
        print(f"pretrain_camera: {' '.join(command)}", flush=True)
        subprocess.run(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    run.mkdir(parents=True, exist_ok=True)
    (run / "params.yaml").write_text(yaml.safe_dump(run_params(args, data), sort_keys=False))
    for name in ("prepare_2d", "train_2d", "evaluate_2d"):
        stage(name, run)
    target = out / CHECKPOINT_NAME
    shutil.copyfile(run / "models" / "model.pth", target)
    print(f"pretrain_camera: wrote {target}; its evaluation on the generated val split: {run}/metrics/eval.json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python scripts/pretrain_camera.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the data, the run and the checkpoint")
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=7, help="sample_data seed (the pipeline's sample is seed 0)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--val-interval", type=int, default=10)
    parser.add_argument("--log-interval", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--snapshot", action="store_true", help="only write the latest epoch as the checkpoint")
    args = parser.parse_args()
    if args.snapshot:
        snapshot(args.out.resolve())
    else:
        pretrain(args)


if __name__ == "__main__":
    main()
