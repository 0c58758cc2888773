"""Benchmark (not a test): one training step on 2 processes x 1 thread against 1 process x 2
threads at the same global batch, and the communication share of the 2-process step.

Both run the trained config (models/model.py) on the prepared train split, under the stages'
pinned host settings (train.deterministic), from batches loaded before timing (so the figures are
the model's forward, backward, gradient all-reduce and optimizer step, not data loading). The
2-process run is DDP over gloo, as `train.launcher: pytorch` trains on CPUs; each of its steps is
timed twice, alternately: as trained (DDP all-reduces the gradients during backward) and inside
DDP's `no_sync()` (no all-reduce). The communication share is 1 - no_sync / synced. No goal on a
2-core host (the two ranks share the cores the one process uses); it reports what scaling out costs.

    .venv/bin/python benchmarks/distributed_step.py [--steps 20] [--global-batch 4]

Run it from the repository root after `dvc repro train`, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WARMUP = 3


def load_batches(cfg: Any, batch_size: int, count: int) -> list[Any]:
    from mmengine.runner import Runner

    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.pop("persistent_workers", None)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches: list[Any] = []
    while len(batches) < count:
        batches.extend(loader)
    return batches[:count]


def timed_step(model: Any, module: Any, optimizer: Any, batch: Any, sync: bool) -> float:
    start = time.perf_counter()
    with contextlib.nullcontext() if sync or module is model else model.no_sync():
        data = module.data_preprocessor(batch, True)
        loss, _ = module.parse_losses(model(**data, mode="loss"))
        loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - start


def worker(batch_size: int, steps: int) -> None:
    """One process of a measurement (started by main, alone or under torchrun)."""
    import torch
    import torch.distributed as dist
    from mmengine.config import Config
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODELS, init_default_scope

    from mmloop.core.device import select_device

    select_device("cpu")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if ranks > 1:
        dist.init_process_group("gloo")
    cfg = Config.fromfile(str(REPO / "models" / "model.py"))
    init_default_scope("mmdet3d")
    module = MODELS.build(cfg.model)
    module.train()
    model = MMDistributedDataParallel(module, device_ids=None, broadcast_buffers=False) if ranks > 1 else module
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    batches = load_batches(cfg, batch_size, WARMUP + steps)
    times: dict[str, list[float]] = {"synced": [], "no_sync": []}
    for index, batch in enumerate(batches):
        for mode in times if ranks > 1 else ["synced"]:
            elapsed = timed_step(model, module, optimizer, batch, sync=mode == "synced")
            if index >= WARMUP:
                times[mode].append(elapsed)
    if ranks > 1:
        # A step takes as long as its slowest rank.
        for mode, values in times.items():
            gathered: list[Any] = [None] * ranks
            dist.all_gather_object(gathered, values)
            times[mode] = [max(step) for step in zip(*gathered, strict=True)]
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print("RESULT " + json.dumps({mode: statistics.median(values) for mode, values in times.items() if values}))


def measure(ranks: int, threads: int, batch_size: int, steps: int) -> dict[str, float]:
    from mmloop.core.determinism import host_environment

    env = dict(os.environ, **host_environment(threads), PYTHONPATH=str(REPO))
    script = [str(Path(__file__).resolve()), "--worker", f"--batch={batch_size}", f"--steps={steps}"]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] if ranks > 1 else []
    result = subprocess.run([sys.executable, *launcher, *script], cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise SystemExit(f"{ranks} x {threads} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--global-batch", type=int, default=4, help="frames per step, over all processes (even)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        worker(options.batch, options.steps)
        return
    for needed, stage in (("models/model.py", "train"), ("work/prepared/kitti_infos_train.pkl", "prepare")):
        if not (REPO / needed).is_file():
            raise SystemExit(f"{needed} not found: run `dvc repro {stage}` first")
    one = measure(1, 2, options.global_batch, options.steps)["synced"]
    two = measure(2, 1, options.global_batch // 2, options.steps)
    share = 1 - two["no_sync"] / two["synced"]
    print(f"1 process x 2 threads, batch {options.global_batch}: {one * 1000:.0f} ms/step")
    print(
        f"2 processes x 1 thread, batch {options.global_batch // 2} each: {two['synced'] * 1000:.0f} ms/step "
        f"({two['no_sync'] * 1000:.0f} ms without the gradient all-reduce)"
    )
    print(
        f"step time, 2 processes x 1 thread / 1 process x 2 threads: {two['synced'] / one:.3f}; "
        f"communication share of the 2-process step: {share:.1%} (median of {options.steps} steps; no goal on 2 cores)"
    )


if __name__ == "__main__":
    main()
