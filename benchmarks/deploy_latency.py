"""Benchmark (not a test): ONNX Runtime / PyTorch latency for the full-size KITTI PointPillars.

The deploy stages measure the small sample model; this runs the same measurement on mmdet3d's
full-size 3-class KITTI PointPillars (configs/models/pointpillars_kitti-3class.py: 432 x 496
pillars, up to 40000 voxels): export with our deploy config, int8 quantization with params.yaml
`deploy.int8`, then per-frame latency (voxelize + network + decode, mmdeploy's backend model vs
PyTorch eager, alternating frame by frame) on the prepared frames of a split. Weights are random
(nothing is downloaded): latency does not depend on them, accuracy does, so no mAP is printed.
Goals: fp32 <= 0.6, int8 <= 0.4.

    .venv/bin/python benchmarks/deploy_latency.py [--split val] [--warmup 3] [--rounds 2]

Run it from the repository root after `dvc repro prepare`, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

FULL_SIZE = "configs/models/pointpillars_kitti-3class.py"
GOALS = {"fp32": 0.6, "int8": 0.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", help="a prepared split (work/prepared/kitti_infos_<split>.pkl)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of the first frame per pass")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the split per model")
    options = parser.parse_args()

    from mmloop.core.device import select_device
    from mmloop.core.paths import load_paths
    from mmloop.core.stage import StageError, load_params
    from mmloop.datasets import dataset_format

    paths = load_paths()
    dataset = dataset_format(load_params("data"))
    info_file = dataset.info_file(paths.prepared, options.split)
    if not info_file.is_file():
        raise SystemExit(f"{info_file}: not found; run `dvc repro prepare` first")
    select_device("cpu")
    import torch
    from mmdeploy.apis.utils import build_task_processor

    from mmloop.deploy.export import export_onnx
    from mmloop.deploy.parity import compare_on_split, pytorch_model, voxel_frames
    from mmloop.deploy.quantize import quantize_int8
    from mmloop.deploy.target import graph_io, load_deploy_config
    from mmloop.openmmlab.cfg_options import data_options
    from mmloop.openmmlab.config import load_config

    deploy = load_params("deploy")
    model_cfg = load_config(FULL_SIZE)
    model_cfg.merge_from_dict(data_options(model_cfg.to_dict(), paths.prepared))
    reference = pytorch_model(model_cfg, None, "cpu")
    deploy_cfg = load_deploy_config("onnxruntime", deploy["opset"])
    io = graph_io(deploy_cfg)
    train_infos = dataset.info_file(paths.prepared, "train")
    with tempfile.TemporaryDirectory(prefix="mmloop-bench-deploy-") as scratch:
        folder = Path(scratch)
        checkpoint = folder / "random.pth"
        torch.save({"state_dict": reference.state_dict()}, checkpoint)
        fp32 = export_onnx(dataset.first_cloud(paths.prepared, "train"), folder, deploy_cfg, model_cfg, checkpoint)
        int8 = folder / "int8.onnx"
        frames = voxel_frames(reference, model_cfg, train_infos, deploy["int8"]["calibration_frames"], io.inputs)
        try:
            quantize_int8(fp32, int8, frames, deploy["int8"]["keep_float"])
        except StageError as error:
            raise SystemExit(str(error)) from None
        processor = build_task_processor(model_cfg, deploy_cfg, "cpu")
        for precision, model_file in (("fp32", fp32), ("int8", int8)):
            deployed = processor.build_backend_model([str(model_file)])
            result = compare_on_split(
                reference, deployed, model_cfg, info_file, io, "cpu", options.warmup, options.rounds, progress=False
            )
            pytorch_ms, onnx_ms = result.pytorch.median_ms(), result.deployed.median_ms()
            print(
                f"onnxruntime-{precision}: {onnx_ms:.1f} ms vs PyTorch {pytorch_ms:.1f} ms per frame, "
                f"ratio {onnx_ms / pytorch_ms:.3f} (goal <= {GOALS[precision]}; median of {options.rounds} x {result.frames} "
                f"{options.split} frames, full-size KITTI PointPillars)",
                flush=True,
            )


if __name__ == "__main__":
    main()
