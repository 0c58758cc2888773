"""The process group of a multi-process `train` and the Runner settings it needs.

Workaround, mmengine 0.10.7 (the last release): its launchers (`_init_dist_pytorch`,
`_init_dist_slurm`) call `torch.cuda.set_device` unconditionally, which fails on a CPU host, and
`Runner.wrap_model` gives DDP `device_ids=[LOCAL_RANK]`, which DDP refuses for a CPU module. So we
start the process group ourselves before the Runner (gloo on CPUs, NCCL on GPUs; the Runner then
skips its own `init_dist`) and, on CPUs, give the Runner a wrapper config with `device_ids=None`
(mmengine's builder lets the config's value win over its default). tests/unit/openmmlab covers
both; tests/pipeline/test_distributed.py trains with them.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from mmloop.core.launch import Launch, Rank, die_with_launcher, rendezvous

#: How long a rank waits for the others (at the rendezvous and in each collective) before failing:
#: torch's default of 30 min would leave a killed run's surviving ranks hanging that long.
TIMEOUT = datetime.timedelta(minutes=10)


def init_process_group(launch: Launch, rank: Rank, device: str) -> str:
    """Join this rank to the others; returns the backend's name."""
    import torch
    import torch.distributed as dist

    die_with_launcher(launch)
    rendezvous(launch, rank, os.environ)
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(rank.local_rank)
    dist.init_process_group(backend, init_method="env://", rank=rank.rank, world_size=rank.world_size, timeout=TIMEOUT)
    return backend


def distributed_settings(cfg: Any, launch: Launch, device: str) -> None:
    """What the Runner needs to train as one of several ranks; none of it changes the model."""
    cfg.launcher = launch.launcher
    if device == "cpu":
        # broadcast_buffers=False as mmengine's own default wrapper has it (torch 2.13 warns that
        # the name is deprecated; the behaviour is the one mmengine trains with on GPUs).
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)
    # mmengine names it 'gpu', but it means "through the process group" (gloo too): the default,
    # 'cpu', passes results through a temporary folder that every node must share.
    for evaluator in ("val_evaluator", "test_evaluator"):
        if isinstance(cfg.get(evaluator), dict):
            cfg[evaluator]["collect_device"] = "gpu"


def leave_process_group() -> None:
    """After training: torch warns when a process exits with its group still up."""
    import torch.distributed as dist

    dist.destroy_process_group()
