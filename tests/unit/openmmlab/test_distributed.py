"""The mmengine 0.10.7 workaround for training on several CPU processes (mmloop/openmmlab/distributed.py):
what fails without it, and that mmengine's own `Runner.wrap_model` builds a working CPU DDP with it.

Runs one gloo rank (world size 1) in this process: enough for DDP to build and all-reduce."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner

from mmloop.core.launch import Rank, launch_params
from mmloop.openmmlab.distributed import distributed_settings, init_process_group, leave_process_group
from tests.helpers import free_ports


@pytest.fixture
def one_rank(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_ports(1)[0]),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    launch = launch_params({"launcher": "pytorch"})
    assert init_process_group(launch, Rank(0, 0, 1), "cpu") == "gloo"
    yield
    leave_process_group()


def wrap(cfg: Config, model_wrapper_cfg: dict | None) -> torch.nn.Module:
    """mmengine's own `Runner.wrap_model`, on the attributes it reads of a Runner."""
    from mmengine.logging import MMLogger

    runner = SimpleNamespace(distributed=True, cfg=cfg, logger=MMLogger.get_instance("test_distributed"))
    return Runner.wrap_model(runner, model_wrapper_cfg, torch.nn.Linear(3, 1))  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the trap is on hosts without CUDA")
def test_mmengine_s_own_launcher_and_wrapper_fail_on_a_cpu_host(one_rank: None) -> None:
    """Why the workaround exists; if mmengine ever fixes these, this test says so."""
    from mmengine.dist.utils import _init_dist_pytorch

    with pytest.raises((AssertionError, AttributeError, RuntimeError)):  # torch.cuda.set_device, CPU build
        _init_dist_pytorch("gloo")
    with pytest.raises(ValueError, match="device_ids"):  # DDP: device_ids=[LOCAL_RANK] for a CPU module
        wrap(Config({}), None)


def test_with_our_settings_mmengine_wraps_a_cpu_model_that_trains(one_rank: None) -> None:
    cfg = Config({"val_evaluator": {"type": "KittiMetric"}, "test_evaluator": [{"type": "A"}]})
    distributed_settings(cfg, launch_params({"launcher": "pytorch"}), "cpu")
    assert cfg.launcher == "pytorch"
    assert cfg.val_evaluator.collect_device == "gpu"  # through the process group, not a shared folder
    model = wrap(cfg, cfg.model_wrapper_cfg)
    assert type(model).__name__ == "MMDistributedDataParallel" and model.device_ids is None
    loss = model(torch.ones(2, 3)).sum()
    loss.backward()  # DDP's all-reduce of the gradients, through gloo
    assert model.module.weight.grad is not None and dist.is_initialized()


def test_on_gpus_mmengine_keeps_its_own_wrapper() -> None:
    cfg = Config({})
    distributed_settings(cfg, launch_params({"launcher": "slurm"}), "cuda")
    assert cfg.launcher == "slurm" and "model_wrapper_cfg" not in cfg
