"""Benchmark (not a test): mmloop_runtime's latency per step against mmdeploy's backend model.

Both run the same ONNX file with ONNX Runtime on the same frames; what differs is around the
graph: voxelization (numpy vs mmcv's op) and decoding (numpy vs mmdet3d's predict_by_feat, which
mmdeploy's postprocess calls after rebuilding the head). Per step medians for each, then the
ratio of whole frames (runtime / mmdeploy). Goal: <= 0.8. It also times mmdeploy's ONNX Runtime
call alone, on voxels made beforehand: next to the frame's PyTorch steps the same call is slower
on a 2-core CPU, as PyTorch's worker threads keep spinning after each op.

    .venv/bin/python benchmarks/runtime_latency.py [--split val] [--rounds 3] [--full-size]

Default: the deployed models `dvc repro` built (deploy/onnxruntime-fp32 and -int8, trained on the
sample). --full-size: mmdet3d's full-size 3-class KITTI PointPillars (432 x 496 pillars), exported
here with random weights and the class prior raised so decoding and NMS have as many candidates
as a trained model's. Run from the repository root after `dvc repro`, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

FULL_SIZE = "configs/models/pointpillars_kitti-3class.py"
GOAL = 0.8
STEPS = ("voxelize", "network", "decode")


def mmdeploy_frame(backend: Any, data: dict[str, Any], io: Any) -> dict[str, float]:
    """mmdeploy's backend model on one frame, step by step (what its test_step runs)."""
    from mmdeploy.codebase.mmdet3d.deploy.voxel_detection_model import VoxelDetectionModel

    start = time.perf_counter()
    batch = backend.data_preprocessor(data, False)
    voxelized = time.perf_counter()
    voxels = batch["inputs"]["voxels"]
    outputs = backend.wrapper({name: voxels[name] for name in io.inputs})
    ran = time.perf_counter()
    # mmdeploy names each head output <map><level> (cls_score0); its postprocess takes {map: [levels]}
    levels = {name.rstrip("0123456789"): [outputs[name]] for name in io.outputs}
    VoxelDetectionModel.postprocess(backend.model_cfg, backend.deploy_cfg, levels, batch["data_samples"])
    done = time.perf_counter()
    return {"voxelize": 1000 * (voxelized - start), "network": 1000 * (ran - voxelized), "decode": 1000 * (done - ran)}


def network_alone(backend: Any, voxels: dict[str, Any]) -> dict[str, float]:
    start = time.perf_counter()
    backend.wrapper(voxels)
    return {"network": 1000 * (time.perf_counter() - start)}


def runtime_frame(detector: Any, points: Any) -> dict[str, float]:
    detector.predict(points)
    return dict(detector.timings)


def medians(frames: list[dict[str, float]]) -> dict[str, float]:
    steps = {step: statistics.median(frame[step] for frame in frames) for step in frames[0]}
    steps["total"] = statistics.median(sum(frame.values()) for frame in frames)
    return steps


def measure(
    folder: Path, info_file: Path, rounds: int, warmup: int
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(mmdeploy, runtime, mmdeploy's network alone) median milliseconds per step over `rounds`
    passes each, never interleaved."""
    import torch
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import load_config

    from mmloop.deploy.parity import split_loader
    from mmloop.deploy.target import graph_io
    from mmloop_runtime import Detector
    from mmloop_runtime.kitti import read_cloud

    deploy_cfg, model_cfg = load_config(str(folder / "deploy.py"), str(folder / "model.py"))
    io = graph_io(deploy_cfg)
    backend = build_task_processor(model_cfg, deploy_cfg, "cpu").build_backend_model([str(folder / "end2end.onnx")])
    detector = Detector(folder)
    frames = list(split_loader(model_cfg, info_file))
    clouds = [read_cloud(Path(data["data_samples"][0].lidar_path)) for data in frames]
    timed: dict[str, list[dict[str, float]]] = {"mmdeploy": [], "runtime": [], "alone": []}
    with torch.no_grad():
        voxels = [backend.data_preprocessor(data, False)["inputs"]["voxels"] for data in frames]
        voxels = [{name: frame[name] for name in io.inputs} for frame in voxels]
        for _ in range(rounds):
            for _ in range(warmup):
                mmdeploy_frame(backend, frames[0], io)
            timed["mmdeploy"] += [mmdeploy_frame(backend, data, io) for data in frames]
            for _ in range(warmup):
                runtime_frame(detector, clouds[0])
            timed["runtime"] += [runtime_frame(detector, points) for points in clouds]
            for _ in range(warmup):
                network_alone(backend, voxels[0])
            timed["alone"] += [network_alone(backend, frame) for frame in voxels]
    return medians(timed["mmdeploy"]), medians(timed["runtime"]), medians(timed["alone"])


def full_size_folder(scratch: Path, prepared: Path, frame: Path) -> Path:
    """The full-size KITTI PointPillars exported with random weights, as a deployed-model folder."""
    import torch

    from mmloop.deploy.export import export_model_folder
    from mmloop.deploy.parity import pytorch_model
    from mmloop.deploy.target import load_deploy_config
    from mmloop.openmmlab.cfg_options import data_options
    from mmloop.openmmlab.config import load_config

    torch.manual_seed(0)
    model_cfg = load_config(FULL_SIZE)
    model_cfg.merge_from_dict(data_options(model_cfg.to_dict(), prepared))
    model = pytorch_model(model_cfg, None, "cpu")
    with torch.no_grad():
        model.bbox_head.conv_cls.bias.fill_(-0.5)  # scores around 0.4: NMS gets nms_pre candidates per class
    checkpoint = scratch / "random.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    deploy_cfg = load_deploy_config("onnxruntime", 13)
    export_model_folder(frame, scratch, deploy_cfg, model_cfg, checkpoint)
    return scratch


def report(name: str, mmdeploy: dict[str, float], runtime: dict[str, float], alone: dict[str, float]) -> None:
    ratio = runtime["total"] / mmdeploy["total"]
    print(f"{name}: runtime / mmdeploy = {ratio:.3f} (goal <= {GOAL})")
    for step in (*STEPS, "total"):
        print(f"  {step:<9} runtime {runtime[step]:7.2f} ms   mmdeploy {mmdeploy[step]:7.2f} ms")
    print(f"  (mmdeploy's ONNX Runtime call alone, on voxels made beforehand: {alone['network']:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", help="a prepared split (work/prepared/kitti_infos_<split>.pkl)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the split per path")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of the first frame per pass")
    parser.add_argument("--full-size", action="store_true", help="the full-size KITTI PointPillars, random weights")
    options = parser.parse_args()

    from mmloop.core.device import select_device
    from mmloop.core.paths import load_paths
    from mmloop.core.stage import load_params
    from mmloop.datasets import dataset_format

    paths = load_paths()
    dataset = dataset_format(load_params("data"))
    info_file = dataset.info_file(paths.prepared, options.split)
    if not info_file.is_file():
        raise SystemExit(f"{info_file}: not found; run `dvc repro prepare` first")
    select_device("cpu")
    if options.full_size:
        with tempfile.TemporaryDirectory(prefix="mmloop-bench-runtime-") as scratch:
            folder = full_size_folder(Path(scratch), paths.prepared, dataset.first_cloud(paths.prepared, "train"))
            report(
                "full-size KITTI PointPillars (random weights), fp32",
                *measure(folder, info_file, options.rounds, options.warmup),
            )
        return
    for target in ("onnxruntime-fp32", "onnxruntime-int8"):
        folder = paths.deployed_dir(target)
        if not (folder / "manifest.json").is_file():
            raise SystemExit(f"{folder}/manifest.json: not found; run `dvc repro` first")
        report(f"{target} (sample model, {options.split})", *measure(folder, info_file, options.rounds, options.warmup))


if __name__ == "__main__":
    main()
