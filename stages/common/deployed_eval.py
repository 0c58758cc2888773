"""A deployed model against the PyTorch model it came from: the same frames and voxels, the same
KittiMetric, head-output parity and per-frame latency, measured in one process.

mmengine's Runner.test() times data loading with the model and cannot feed two models the same
voxels, so the loops are ours (a few lines), built from mmengine's dataloader and Evaluator.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.deploy_target import INPUTS, OUTPUTS
from stages.common.kitti_metric import kitti_summary


@dataclass
class Side:
    """What one model did on the split: KittiMetric's results and per-frame seconds."""
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def median_ms(self) -> float:
        return round(1000 * statistics.median(self.seconds), 3)


@dataclass
class Comparison:
    frames: int
    pytorch: Side
    deployed: Side
    max_abs_diff: dict[str, float]


def pytorch_model(model_cfg: Any, checkpoint: Path | None, device: str) -> Any:
    """The mmdet3d model in eval mode (random weights without a checkpoint)."""
    from mmdet3d.apis import init_model

    return init_model(model_cfg, str(checkpoint) if checkpoint else None, device=device)


def split_loader(model_cfg: Any, info_file: Path) -> Any:
    """The config's test dataloader over `info_file`, one frame per batch (latency is per frame)."""
    from mmengine.runner import Runner

    loader_cfg = model_cfg.test_dataloader.copy()
    loader_cfg.dataset = loader_cfg.dataset.copy()
    loader_cfg.dataset.ann_file = info_file.name
    loader_cfg.batch_size = 1
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    return Runner.build_dataloader(loader_cfg)


def frame_voxels(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The voxelizer's output for one frame: the deployed graph's inputs."""
    return model.data_preprocessor(data, False)["inputs"]["voxels"]


def head_outputs(model: Any, voxels: dict[str, Any]) -> dict[str, Any]:
    """The PyTorch model's raw head maps on `voxels`, named like the ONNX graph's outputs."""
    # mmdet3d's PillarFeatureNet (legacy=True, the default) writes the pillar-centre offsets into
    # its input in place: give it copies, or the deployed model would then see altered voxels.
    copies = {name: tensor.clone() for name, tensor in voxels.items()}
    cls_scores, bbox_preds, dir_cls_preds = model._forward({"voxels": copies})
    return {name: maps[0] for name, maps in zip(OUTPUTS, (cls_scores, bbox_preds, dir_cls_preds))}


def voxel_frames(model: Any, model_cfg: Any, info_file: Path, limit: int) -> Iterator[dict[str, np.ndarray]]:
    """Voxelized frames of a prepared split as numpy arrays: int8 calibration data."""
    import torch

    with torch.no_grad():
        for index, data in enumerate(split_loader(model_cfg, info_file)):
            if index >= limit:
                return
            voxels = frame_voxels(model, data)
            yield {name: voxels[name].cpu().numpy() for name in INPUTS}


def timed_test_step(model: Any, data: dict[str, Any], device: str) -> tuple[list[Any], float]:
    """Voxelize, network, decode for one frame; seconds measured around the whole step."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    outputs = model.test_step(data)
    if device == "cuda":
        torch.cuda.synchronize()
    return outputs, time.perf_counter() - start


def timed_pass(model: Any, loader: Any, evaluator: Any | None, device: str, warmup: int) -> list[float]:
    """One model over every frame: per-frame seconds, and the results into `evaluator` if given."""
    seconds: list[float] = []
    for index, data in enumerate(loader):
        for _ in range(warmup if index == 0 else 0):
            model.test_step(data)
        outputs, elapsed = timed_test_step(model, data, device)
        seconds.append(elapsed)
        if evaluator is not None:
            evaluator.process(data_samples=outputs, data_batch=data)
    return seconds


def head_differences(reference: Any, deployed: Any, loader: Any) -> dict[str, float]:
    """Largest |deployed - PyTorch| of each head output over the frames, on the same voxels."""
    max_abs_diff = dict.fromkeys(OUTPUTS, 0.0)
    for data in loader:
        voxels = frame_voxels(reference, data)
        expected = head_outputs(reference, voxels)
        got = deployed.wrapper({name: voxels[name] for name in INPUTS})
        for name in OUTPUTS:
            diff = (got[name].float().to(expected[name].device) - expected[name]).abs().max()
            max_abs_diff[name] = max(max_abs_diff[name], float(diff))
    return max_abs_diff


def compare_on_split(reference: Any, deployed: Any, model_cfg: Any, info_file: Path, device: str,
                     warmup: int, rounds: int, progress: bool = True) -> Comparison:
    """`rounds` x (PyTorch over the split, then the deployed model), then both on the same voxels
    for parity. KittiMetric scores the first round; latency is the median over all rounds.

    Timed passes never interleave the two: ONNX Runtime's and PyTorch's worker threads keep
    spinning for a while after each run, and interleaved they slowed each other down (PyTorch
    measured 41.7 ms per frame right after ONNX Runtime runs, 21.4 ms on its own, on 2 cores).
    Each pass starts with `warmup` untimed runs of its first frame.
    """
    import torch
    from mmengine.evaluator import Evaluator

    loader = split_loader(model_cfg, info_file)
    frames = len(loader.dataset)
    sides = {"pytorch": Side(), "deployed": Side()}
    models = {"pytorch": reference, "deployed": deployed}
    with torch.no_grad():
        for round_ in range(rounds):
            for label, model in models.items():
                evaluator = None
                if round_ == 0:
                    evaluator = Evaluator(model_cfg.test_evaluator)
                    evaluator.dataset_meta = loader.dataset.metainfo
                seconds = timed_pass(model, loader, evaluator, device, warmup)
                sides[label].seconds += seconds
                if evaluator is not None:
                    sides[label].metrics = evaluator.evaluate(frames)
                if progress:
                    print(f"  round {round_ + 1}/{rounds}, {label}: median {1000 * statistics.median(seconds):.1f} ms "
                          f"per frame over {frames} frames", flush=True)
        max_abs_diff = head_differences(reference, deployed, loader)
    return Comparison(frames, sides["pytorch"], sides["deployed"], max_abs_diff)


def comparison_report(comparison: Comparison, classes: list[str]) -> dict[str, Any]:
    """The metrics a deploy target writes: mAP beside PyTorch's, parity, latency and its ratio."""
    pytorch = kitti_summary(comparison.pytorch.metrics, classes)
    deployed = kitti_summary(comparison.deployed.metrics, classes)
    pytorch_ms = comparison.pytorch.median_ms()
    deployed_ms = comparison.deployed.median_ms()
    return {
        "frames": comparison.frames,
        "mAP": deployed["mAP_3d_moderate"],
        "mAP_pytorch": pytorch["mAP_3d_moderate"],
        "mAP_delta": round(deployed["mAP_3d_moderate"] - pytorch["mAP_3d_moderate"], 4),
        "mAP_bev": deployed["mAP_bev_moderate"],
        "mAP_bev_delta": round(deployed["mAP_bev_moderate"] - pytorch["mAP_bev_moderate"], 4),
        "max_abs_diff": max(comparison.max_abs_diff.values()),
        "max_abs_diff_by_output": comparison.max_abs_diff,
        "latency_ms": deployed_ms,
        "latency_ms_pytorch": pytorch_ms,
        "latency_ratio": round(deployed_ms / pytorch_ms, 4),
        "ap_3d_moderate": {name: deployed[name]["3d"]["moderate"] for name in classes},
    }
