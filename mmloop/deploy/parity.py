"""A deployed model against the PyTorch model it came from: the same frames and voxels, the same
KittiMetric, head-output parity and per-frame latency, measured in one process. And the torch-free
runtime (mmloop_runtime) against mmdeploy's backend model on the same deployed file: the same
boxes after NMS, the same KittiMetric, and its latency per step.

mmengine's Runner.test() times data loading with the model and cannot feed two models the same
voxels, so the loops are ours (a few lines), built from mmengine's dataloader and Evaluator.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmloop.deploy.target import GraphIO
from mmloop.models import family_of

#: The dataset format's metric_summary(metrics, classes) (mmloop/datasets/<format>).
Summarize = Callable[[dict[str, float], list[str]], dict[str, Any]]


@dataclass
class Side:
    """What one model did on the split: KittiMetric's results and per-frame seconds (and, for the
    runtime, milliseconds per step of each frame)."""

    metrics: dict[str, float] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)

    def median_ms(self) -> float:
        return round(1000 * statistics.median(self.seconds), 3)


@dataclass
class Comparison:
    frames: int
    pytorch: Side
    deployed: Side
    max_abs_diff: dict[str, float]
    runtime: Side | None = None
    agreement: dict[str, Any] | None = None


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


def voxel_frames(
    model: Any, model_cfg: Any, info_file: Path, limit: int, inputs: list[str]
) -> Iterator[dict[str, np.ndarray]]:
    """Voxelized frames of a prepared split as numpy arrays: int8 calibration data."""
    import torch

    with torch.no_grad():
        for index, data in enumerate(split_loader(model_cfg, info_file)):
            if index >= limit:
                return
            voxels = frame_voxels(model, data)
            yield {name: voxels[name].cpu().numpy() for name in inputs}


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


def timed_pass(
    model: Any, loader: Any, evaluator: Any | None, device: str, warmup: int, detections: list[Any] | None = None
) -> list[float]:
    """One model over every frame: per-frame seconds, and the results into `evaluator` (and as
    numpy `detections`) if given."""
    seconds: list[float] = []
    for index, data in enumerate(loader):
        for _ in range(warmup if index == 0 else 0):
            model.test_step(data)
        outputs, elapsed = timed_test_step(model, data, device)
        seconds.append(elapsed)
        if evaluator is not None:
            evaluator.process(data_samples=outputs, data_batch=data)
        if detections is not None:
            detections.append(as_detections(outputs[0].pred_instances_3d))
    return seconds


def as_detections(pred: Any) -> Any:
    """mmdet3d's pred_instances_3d as the runtime's numpy Detections."""
    from mmloop_runtime import Detections

    return Detections(pred.bboxes_3d.tensor.cpu().numpy(), pred.scores_3d.cpu().numpy(), pred.labels_3d.cpu().numpy())


def metric_sample(data: dict[str, Any], detections: Any) -> dict[str, Any]:
    """The runtime's detections as the data sample KittiMetric.process reads."""
    import torch
    from mmdet3d.structures import LiDARInstance3DBoxes

    boxes, scores, labels = (torch.from_numpy(array) for array in detections)
    return {
        "pred_instances_3d": {"bboxes_3d": LiDARInstance3DBoxes(boxes), "scores_3d": scores, "labels_3d": labels},
        "pred_instances": {},
        "sample_idx": data["data_samples"][0].sample_idx,
    }


def runtime_pass(
    detector: Any, loader: Any, evaluator: Any | None, warmup: int, detections: list[Any] | None = None
) -> tuple[list[float], list[dict[str, float]]]:
    """The runtime over every frame, from the raw cloud file (it filters and voxelizes itself):
    per-frame seconds of `predict` (reading the file excluded, as the loader's is for mmdeploy)
    and its per-step milliseconds."""
    from mmloop_runtime.kitti import read_cloud

    seconds: list[float] = []
    steps: list[dict[str, float]] = []
    features = detector.manifest.voxelizer.point_features
    for index, data in enumerate(loader):
        points = read_cloud(Path(data["data_samples"][0].lidar_path), features)
        for _ in range(warmup if index == 0 else 0):
            detector.predict(points)
        start = time.perf_counter()
        found = detector.predict(points)
        seconds.append(time.perf_counter() - start)
        steps.append(dict(detector.timings))
        if evaluator is not None:
            evaluator.process(data_samples=[metric_sample(data, found)], data_batch=data)
        if detections is not None:
            detections.append(found)
    return seconds, steps


def detection_agreement(expected: list[Any], got: list[Any], box_tolerance: float) -> dict[str, Any]:
    """Frame by frame: the same number of boxes with the same labels, and how far boxes and scores
    differ (boxes paired in (label, score) order). A frame agrees when its boxes are within
    `box_tolerance`."""
    agreeing, box_diff, score_diff, mismatched = 0, 0.0, 0.0, []
    for index, (ours, theirs) in enumerate(zip(expected, got)):
        order_ours = np.lexsort((-ours.scores, ours.labels))
        order_theirs = np.lexsort((-theirs.scores, theirs.labels))
        if len(ours.labels) != len(theirs.labels) or not np.array_equal(
            ours.labels[order_ours], theirs.labels[order_theirs]
        ):
            mismatched.append(index)
            continue
        frame_box = float(np.abs(ours.boxes[order_ours] - theirs.boxes[order_theirs]).max(initial=0.0))
        frame_score = float(np.abs(ours.scores[order_ours] - theirs.scores[order_theirs]).max(initial=0.0))
        box_diff, score_diff = max(box_diff, frame_box), max(score_diff, frame_score)
        agreeing += frame_box <= box_tolerance
        if frame_box > box_tolerance:
            mismatched.append(index)
    return {
        "frames_agreeing": agreeing,
        "frames_disagreeing": mismatched,
        "boxes": int(sum(len(item.labels) for item in expected)),
        "box_max_abs_diff": box_diff,
        "score_max_abs_diff": score_diff,
    }


def head_differences(reference: Any, deployed: Any, loader: Any, model_cfg: Any, io: GraphIO) -> dict[str, float]:
    """Largest |deployed - PyTorch| of each head output over the frames, on the same voxels."""
    family = family_of(model_cfg)
    max_abs_diff = dict.fromkeys(io.outputs, 0.0)
    for data in loader:
        voxels = frame_voxels(reference, data)
        expected = family.head_outputs(reference, voxels, io.outputs)
        got = deployed.wrapper({name: voxels[name] for name in io.inputs})
        for name in io.outputs:
            diff = (got[name].float().to(expected[name].device) - expected[name]).abs().max()
            max_abs_diff[name] = max(max_abs_diff[name], float(diff))
    return max_abs_diff


def compare_on_split(
    reference: Any,
    deployed: Any,
    model_cfg: Any,
    info_file: Path,
    io: GraphIO,
    device: str,
    warmup: int,
    rounds: int,
    runtime: Any | None = None,
    box_tolerance: float = 1e-3,
    progress: bool = True,
) -> Comparison:
    """`rounds` x (PyTorch over the split, then the deployed model, then the runtime on the same
    deployed file if given), then PyTorch and the deployed model on the same voxels for parity.
    KittiMetric scores the first round; latency is the median over all rounds.

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
    if runtime is not None:
        sides["runtime"], models["runtime"] = Side(), runtime
    detections: dict[str, list[Any]] = {"deployed": [], "runtime": []}
    with torch.no_grad():
        for round_ in range(rounds):
            for label, model in models.items():
                evaluator = None
                if round_ == 0:
                    evaluator = Evaluator(model_cfg.test_evaluator)
                    evaluator.dataset_meta = loader.dataset.metainfo
                found = detections.get(label) if round_ == 0 else None
                if label == "runtime":
                    seconds, steps = runtime_pass(model, loader, evaluator, warmup, found)
                    sides[label].steps += steps
                else:
                    seconds = timed_pass(model, loader, evaluator, device, warmup, found)
                sides[label].seconds += seconds
                if evaluator is not None:
                    sides[label].metrics = evaluator.evaluate(frames)
                if progress:
                    print(
                        f"  round {round_ + 1}/{rounds}, {label}: median {1000 * statistics.median(seconds):.1f} ms "
                        f"per frame over {frames} frames",
                        flush=True,
                    )
        max_abs_diff = head_differences(reference, deployed, loader, model_cfg, io)
    agreement = None
    if runtime is not None:
        agreement = detection_agreement(detections["deployed"], detections["runtime"], box_tolerance)
    return Comparison(frames, sides["pytorch"], sides["deployed"], max_abs_diff, sides.get("runtime"), agreement)


def significant(diff: float, digits: int = 2) -> float:
    """A difference to `digits` significant digits. Why: a largest difference of two nearby
    floats carries their rounding error, which moves its third digit when ONNX Runtime picks
    another kernel (another CPU); two digits are what the tolerance check reads anyway."""
    return float(f"{diff:.{digits - 1}e}")


def comparison_report(comparison: Comparison, classes: list[str], summarize: Summarize) -> dict[str, Any]:
    """The accuracy metrics a deploy target writes: mAP beside PyTorch's and parity. The same on
    every host (latency, which is not, is `latency_report`'s)."""
    pytorch = summarize(comparison.pytorch.metrics, classes)
    deployed = summarize(comparison.deployed.metrics, classes)
    return {
        "frames": comparison.frames,
        "mAP": deployed["mAP_3d_moderate"],
        "mAP_pytorch": pytorch["mAP_3d_moderate"],
        "mAP_delta": round(deployed["mAP_3d_moderate"] - pytorch["mAP_3d_moderate"], 4),
        "mAP_bev": deployed["mAP_bev_moderate"],
        "mAP_bev_delta": round(deployed["mAP_bev_moderate"] - pytorch["mAP_bev_moderate"], 4),
        "max_abs_diff": significant(max(comparison.max_abs_diff.values())),
        "max_abs_diff_by_output": {name: significant(diff) for name, diff in comparison.max_abs_diff.items()},
        "ap_3d_moderate": {name: deployed[name]["3d"]["moderate"] for name in classes},
        **(runtime_report(comparison, deployed, classes, summarize) if comparison.runtime else {}),
    }


def latency_report(comparison: Comparison) -> dict[str, Any]:
    """Median per-frame milliseconds of PyTorch, the deployed model and the runtime (per step; its
    total is the median of whole frames, not a sum of medians), and their ratios."""
    pytorch_ms = comparison.pytorch.median_ms()
    deployed_ms = comparison.deployed.median_ms()
    report: dict[str, Any] = {
        "latency_ms": deployed_ms,
        "latency_ms_pytorch": pytorch_ms,
        "latency_ratio": round(deployed_ms / pytorch_ms, 4),
    }
    runtime = comparison.runtime
    if runtime is not None:
        total_ms = runtime.median_ms()
        steps = {step: round(statistics.median(frame[step] for frame in runtime.steps), 3) for step in runtime.steps[0]}
        report["runtime_latency_ms"] = {**steps, "total": total_ms}
        report["runtime_latency_ratio"] = round(total_ms / deployed_ms, 4)
    return report


def runtime_report(
    comparison: Comparison, deployed: dict[str, Any], classes: list[str], summarize: Summarize
) -> dict[str, Any]:
    """The runtime beside mmdeploy's backend model on the same file: mAP and box agreement."""
    runtime = comparison.runtime
    summary = summarize(runtime.metrics, classes)
    agreement = comparison.agreement
    return {
        "runtime_mAP": summary["mAP_3d_moderate"],
        "runtime_mAP_delta": round(summary["mAP_3d_moderate"] - deployed["mAP_3d_moderate"], 4),
        "runtime_frames_agreeing": agreement["frames_agreeing"],
        "runtime_frames_disagreeing": agreement["frames_disagreeing"],
        "runtime_boxes": agreement["boxes"],
        "runtime_box_max_abs_diff": significant(agreement["box_max_abs_diff"]),
        "runtime_score_max_abs_diff": significant(agreement["score_max_abs_diff"]),
    }


@contextlib.contextmanager
def graph_with_outputs(onnx_file: Path, nodes: list[str], threads: int = 0) -> Iterator[Any]:
    """An ONNX Runtime session (mmloop_runtime's) of `onnx_file` that returns the first output of each
    named node, in order: a graph's intermediate tensors, e.g. raw head maps when NMS is in the graph."""
    import onnx

    from mmloop.core.stage import StageError
    from mmloop_runtime.backends import OnnxRuntimeNetwork

    model = onnx.load(str(onnx_file))
    outputs = {node.name: node.output[0] for node in model.graph.node if node.name in nodes}
    missing = [name for name in nodes if name not in outputs]
    if missing:
        raise StageError(f"{onnx_file}: no node {missing[0]} in the graph; re-export it")
    for name in nodes:
        model.graph.output.append(onnx.helper.make_tensor_value_info(outputs[name], onnx.TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory(prefix="mmloop-outputs-") as scratch:
        path = Path(scratch) / onnx_file.name
        onnx.save(model, str(path))
        yield OnnxRuntimeNetwork(path, tuple(outputs[name] for name in nodes), threads)
