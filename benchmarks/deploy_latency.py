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
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # a script's own folder is on sys.path, the repo root is not
FULL_SIZE = "configs/models/pointpillars_kitti-3class.py"
GOALS = {"fp32": 0.6, "int8": 0.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", help="a prepared split (work/prepared/kitti_infos_<split>.pkl)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of the first frame per pass")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the split per model")
    options = parser.parse_args()
    info_file = REPO / "work" / "prepared" / f"kitti_infos_{options.split}.pkl"
    if not info_file.is_file():
        raise SystemExit(f"{info_file}: not found; run `dvc repro prepare` first")

    from stages.common.mm_runtime import select_device

    select_device("cpu")
    import torch
    from mmdeploy.apis.utils import build_task_processor

    from stages.common.deploy_target import load_deploy_config, trace_frame
    from stages.common.deployed_eval import compare_on_split, pytorch_model, voxel_frames
    from stages.common.model_config import PREPARED, data_options, load_config
    from stages.common.onnx_export import export_onnx
    from stages.common.quantize import quantize_int8

    deploy = yaml.safe_load((REPO / "params.yaml").read_text())["deploy"]
    model_cfg = load_config(FULL_SIZE)
    model_cfg.merge_from_dict(data_options(model_cfg.to_dict(), PREPARED))
    reference = pytorch_model(model_cfg, None, "cpu")
    deploy_cfg = load_deploy_config("onnxruntime", deploy["opset"])
    with tempfile.TemporaryDirectory(prefix="mmloop-bench-deploy-") as scratch:
        folder = Path(scratch)
        checkpoint = folder / "random.pth"
        torch.save({"state_dict": reference.state_dict()}, checkpoint)
        fp32 = export_onnx(trace_frame(PREPARED / "kitti_infos_train.pkl"), folder, deploy_cfg, model_cfg, checkpoint)
        int8 = folder / "int8.onnx"
        frames = voxel_frames(reference, model_cfg, PREPARED / "kitti_infos_train.pkl",
                              deploy["int8"]["calibration_frames"])
        quantize_int8(fp32, int8, frames, deploy["int8"]["keep_float"])
        processor = build_task_processor(model_cfg, deploy_cfg, "cpu")
        for precision, model_file in (("fp32", fp32), ("int8", int8)):
            deployed = processor.build_backend_model([str(model_file)])
            result = compare_on_split(reference, deployed, model_cfg, info_file, "cpu", options.warmup,
                                      options.rounds, progress=False)
            pytorch_ms, onnx_ms = result.pytorch.median_ms(), result.deployed.median_ms()
            print(f"onnxruntime-{precision}: {onnx_ms:.1f} ms vs PyTorch {pytorch_ms:.1f} ms per frame, "
                  f"ratio {onnx_ms / pytorch_ms:.3f} (goal <= {GOALS[precision]}; median of {options.rounds} x {result.frames} "
                  f"{options.split} frames, full-size KITTI PointPillars)", flush=True)


if __name__ == "__main__":
    main()
