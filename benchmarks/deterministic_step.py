"""Benchmark (not a test): training step time with the host pinned (`train.deterministic: true`,
AVX2 kernels, `train.threads` threads) against unpinned (each library's own choice on this CPU).

Both run our `train` stage on the same prepared data, from scratch, for a few epochs, in
alternating rounds; the step time is mmengine's own per-iteration `time` from the scalars log,
median over iterations after a warm-up (as in benchmarks/train_step.py). Goal: pinned / unpinned <= 1.15.

    .venv/bin/python benchmarks/deterministic_step.py [--epochs 3] [--rounds 3]

Run it from the repository root after `dvc repro prepare`, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

import yaml
from train_step import REPO, run, scratch_repo, step_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each, to even out drift")
    options = parser.parse_args()
    if not (REPO / "work" / "prepared" / "kitti_infos_train.pkl").is_file():
        raise SystemExit("work/prepared not found: run `dvc repro prepare` first")

    scratch = scratch_repo(options.epochs)
    params_file = scratch / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    env = dict(os.environ, PYTHONPATH=str(scratch))
    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for round_ in range(options.rounds):
            for deterministic in (True, False):
                params["train"]["deterministic"] = deterministic
                params_file.write_text(yaml.safe_dump(params, sort_keys=False))
                shutil.rmtree(scratch / "work" / "train", ignore_errors=True)
                times[deterministic] += step_times(run([sys.executable, "-m", "stages.train"], scratch, env))
            print(
                f"round {round_ + 1}: pinned {statistics.median(times[True]):.4f} s/iter, "
                f"unpinned {statistics.median(times[False]):.4f} s/iter"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(
        f"train step time, deterministic / unpinned: {ratio:.3f} (median of {len(times[True])} vs "
        f"{len(times[False])} iterations, {params['train']['threads']} threads on {os.cpu_count()} cores, "
        f"{model}; goal <= 1.15)"
    )


if __name__ == "__main__":
    main()
