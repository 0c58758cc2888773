"""Benchmark (not a test): training step time through our `train` stage vs mmdet3d's tools/train.py.

Both train the same config (the one the stage writes to models/model.py, i.e. params applied) on
the same prepared data, from scratch, for a few epochs, under the same host settings (the stage
pins kernels and threads, train.deterministic; tools/train.py gets the same environment); the step
time is mmengine's own per-iteration `time` from each run's log, median over iterations after a
warm-up. Goal: the
ratio stage / tools/train.py <= 1.02 (the stage adds only dvclive logging and checkpoints).

    .venv/bin/python benchmarks/train_step.py [--epochs 3] [--rounds 2]

Run it from the repository root after `dvc repro prepare`, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WARMUP = 5


def step_times(log: str) -> list[float]:
    """Per-iteration `time` from mmengine's log lines (logged every iteration), warm-up dropped.
    From the printed log: the stage removes a finished run's work dir, scalars log included."""
    times = [float(match) for match in re.findall(r"Epoch\(train\).*?  time: ([0-9.]+)", log)]
    if len(times) <= WARMUP:
        raise SystemExit(f"only {len(times)} logged iterations; train longer (--epochs)")
    return times[WARMUP:]


def scratch_repo(epochs: int) -> Path:
    """The stage's inputs in a scratch folder: code, configs, params, prepared data (linked)."""
    scratch = Path(tempfile.mkdtemp(prefix="mmloop-bench-"))
    for name in ("stages", "configs"):
        shutil.copytree(REPO / name, scratch / name, ignore=shutil.ignore_patterns("__pycache__"))
    (scratch / "work").mkdir()
    (scratch / "work" / "prepared").symlink_to(REPO / "work" / "prepared")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["load_from"] = None
    params["train"].update(epochs=epochs, log_interval=1, val_interval=10_000)
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return scratch


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """The command's output (mmengine logs to both streams, depending on the logger's setup)."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each, to even out drift")
    options = parser.parse_args()
    if not (REPO / "work" / "prepared" / "kitti_infos_train.pkl").is_file():
        raise SystemExit("work/prepared not found: run `dvc repro prepare` first")

    from mmloop.core.determinism import host_environment
    from mmloop.core.device import select_device
    from mmloop.openmmlab.tools import mim_dir

    scratch = scratch_repo(options.epochs)
    train = yaml.safe_load((scratch / "params.yaml").read_text())["train"]
    # The stages' process settings, so tools/train.py runs the same way: pinned kernels and threads.
    pinned = host_environment(int(train["threads"])) if train["deterministic"] else {}
    select_device("auto")
    env = dict(os.environ, **pinned, PYTHONPATH=str(scratch))
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for round_ in range(options.rounds):
            shutil.rmtree(scratch / "work" / "train", ignore_errors=True)
            ours += step_times(run([sys.executable, "-m", "stages.train"], scratch, env))
            work_dir = scratch / "work" / f"tools-train-{round_}"
            log = run(
                [
                    sys.executable,
                    str(mim_dir() / "tools" / "train.py"),
                    "models/model.py",
                    "--work-dir",
                    str(work_dir),
                    "--cfg-options",
                    "default_hooks.logger.interval=1",
                    "log_processor.window_size=1",
                    "train_cfg.val_interval=10000",
                ],
                scratch,
                env,
            )
            theirs += step_times(log)
            print(
                f"round {round_ + 1}: stage {statistics.median(ours):.4f} s/iter, "
                f"tools/train.py {statistics.median(theirs):.4f} s/iter"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(
        f"train step time, stage / mmdet3d tools/train.py: {ratio:.3f} "
        f"(median of {len(ours)} vs {len(theirs)} iterations; goal <= 1.02)"
    )


if __name__ == "__main__":
    main()
