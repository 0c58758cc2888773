"""Stage `deploy@<target>`: a deployed model for one target, checked against the PyTorch model.

`dvc.yaml` generates one stage per entry of params.yaml `deploy.targets`:
  onnxruntime-fp32  the exported graph, run by ONNX Runtime on the CPU (graph optimizations on)
  onnxruntime-int8  the graph quantized to int8 (static, calibrated on prepared train frames)
  tensorrt-fp32/fp16/int8  a TensorRT engine (needs TensorRT >= 10 and an NVIDIA GPU)

Each writes `deploy/<target>/` (the backend file, deploy.py, model.py) and
`metrics/deploy/<target>.json`: KittiMetric mAP on the evaluate split through mmdeploy's backend
model beside the PyTorch model's, the largest head-output difference on the same voxels, and
median per-frame latency (voxelize + network + decode) of both, measured in this process. The
stage fails when the mAP delta (or, where set, the head-output difference) passes the tolerance.

The torch-free runtime (runtime/mmloop_runtime) runs the same file from the raw clouds, beside
mmdeploy's backend model: its mAP, whether each frame gives the same boxes after NMS, and its
latency per step (`runtime_*` metrics). The stage fails when they drift past
`deploy.runtime_tolerance`.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from stages.common.deploy_target import (DEPLOY_CFG, MODEL_CFG, ONNX_DIR, Target, load_deploy_config, parse_target,
                                         tensorrt_model_inputs, voxel_layout)
from stages.common.mm_runtime import select_device
from stages.common.model_config import MODEL, PREPARED, require_trained_model
from stages.common.stage import StageError, built_whole, load_params, run_stage, write_json

ONNX_MODEL = ONNX_DIR / "end2end.onnx"


def check_tolerance(target: Target, tolerance: dict[str, Any]) -> tuple[float, float | None]:
    """(max mAP delta, max head-output difference or None) for the target's precision."""
    limits = tolerance.get(target.precision)
    if not isinstance(limits, dict) or not isinstance(limits.get("map_delta"), (int, float)):
        raise StageError(f"params.yaml: deploy.tolerance.{target.precision}.map_delta is missing; "
                         f"add it (mAP points the {target.precision} model may lose)")
    max_abs = limits.get("max_abs_diff")
    return float(limits["map_delta"]), None if max_abs is None else float(max_abs)


def calibration(reference: Any, model_cfg: Any, params: dict[str, Any]) -> Any:
    from stages.common.deployed_eval import voxel_frames

    return voxel_frames(reference, model_cfg, PREPARED / "kitti_infos_train.pkl", int(params["int8"]["calibration_frames"]))


def build_onnxruntime(target: Target, out: Path, reference: Any, model_cfg: Any,
                      params: dict[str, Any]) -> dict[str, Any]:
    if target.precision == "fp32":
        shutil.copyfile(ONNX_MODEL, out / target.backend_file)
        return {}
    from stages.common.quantize import quantize_int8

    print(f"mmloop deploy@{target.name}: int8 calibration on up to {params['int8']['calibration_frames']} "
          f"train frames", flush=True)
    return quantize_int8(ONNX_MODEL, out / target.backend_file, calibration(reference, model_cfg, params),
                         params["int8"]["keep_float"])


def build_tensorrt(trt: ModuleType, target: Target, out: Path, reference: Any, model_cfg: Any,
                   params: dict[str, Any], profiles: dict[str, Any]) -> dict[str, Any]:
    from stages.common import tensorrt_engine as engine
    from stages.common.quantize import quantize_int8
    from stages.common.tensorrt_support import blocking, trt_readiness

    spec = engine.engine_spec(target.precision, params["tensorrt"], profiles)
    plan = engine.build_plan(trt, target.precision)
    source = ONNX_MODEL
    if plan.onnx_variant == "fp16":
        source = out / "end2end.fp16.onnx"
        engine.fp16_onnx(ONNX_MODEL, source)
    elif plan.onnx_variant == "qdq":
        source = out / "end2end.int8.onnx"
        quantize_int8(ONNX_MODEL, source, calibration(reference, model_cfg, params), params["int8"]["keep_float"],
                      symmetric=True)
    import onnx

    readiness = trt_readiness(onnx.load(str(source)), profiles)
    if not readiness["ready"]:
        raise StageError(f"{source}: TensorRT's ONNX parser would reject it: {blocking(readiness)}")
    frames = calibration(reference, model_cfg, params) if plan.calibrator else None
    print(f"mmloop deploy@{target.name}: building the engine from {source.name} "
          f"(TensorRT {trt.__version__}, {plan})", flush=True)
    serialized, timing_cache = engine.build_engine(trt, source, spec, plan, frames)
    (out / target.backend_file).write_bytes(serialized)
    (out / "timing.cache").write_bytes(timing_cache)
    environment = engine.build_environment(trt)
    write_json(out / "build_env.json", environment)
    return {"build_env": environment}


def runtime_tolerance(tolerance: Any) -> tuple[float, float]:
    """(max mAP delta, max box value difference) between the runtime and mmdeploy's backend model."""
    if not isinstance(tolerance, dict) or not all(isinstance(tolerance.get(key), (int, float))
                                                  for key in ("map_delta", "box_abs_diff")):
        raise StageError("params.yaml: deploy.runtime_tolerance needs map_delta and box_abs_diff numbers "
                         "(e.g. {map_delta: 0.1, box_abs_diff: 1.0e-3})")
    return float(tolerance["map_delta"]), float(tolerance["box_abs_diff"])


def runtime_detector(target: Target, out: Path) -> Any | None:
    """mmloop_runtime's Detector on the built folder (None when the export wrote no manifest)."""
    from mmloop_runtime import Detector
    from mmloop_runtime.manifest import MANIFEST

    if not (ONNX_DIR / MANIFEST).is_file():
        print(f"mmloop deploy@{target.name}: {ONNX_DIR / MANIFEST} missing (see metrics/export.json): "
              f"the runtime is not checked", flush=True)
        return None
    shutil.copyfile(ONNX_DIR / MANIFEST, out / MANIFEST)
    try:
        return Detector(out)
    except RuntimeError as error:  # TensorRT targets: the runtime's own engine loader
        raise StageError(f"deploy target {target.name}: mmloop_runtime cannot run the engine: {error}") from None


def check_runtime(target: Target, report: dict[str, Any], map_delta: float, box_abs_diff: float) -> None:
    """The runtime gives the same boxes as mmdeploy's backend model, and the same mAP."""
    if "runtime_mAP" not in report:
        return
    disagreeing = report["runtime_frames_disagreeing"]
    if disagreeing:
        raise StageError(f"{target.metrics}: mmloop_runtime's boxes differ from mmdeploy's on {len(disagreeing)} of "
                         f"{report['frames']} frames (split indices {disagreeing}: another box count or label, or a "
                         f"box value off by more than deploy.runtime_tolerance.box_abs_diff {box_abs_diff:g})")
    if abs(report["runtime_mAP_delta"]) > map_delta:
        raise StageError(f"{target.metrics}: mmloop_runtime's mAP differs from mmdeploy's by "
                         f"{report['runtime_mAP_delta']:+.3f}, over deploy.runtime_tolerance.map_delta {map_delta:g}")


def backend_model(target: Target, out: Path, model_cfg: Any, deploy_cfg: Any, device: str) -> Any:
    """mmdeploy's backend model for the built file (voxelization and decoding in PyTorch)."""
    from mmdeploy.apis.utils import build_task_processor

    processor = build_task_processor(model_cfg, deploy_cfg, device)
    files = [str(out / target.backend_file)]
    if target.backend == "tensorrt":
        from stages.common.tensorrt_engine import tensorrt_backend_model

        with tensorrt_backend_model():
            return processor.build_backend_model(files)
    return processor.build_backend_model(files)


def target_deploy_config(target: Target, params: dict[str, Any], profiles: dict[str, Any]) -> Any:
    """The deploy config written beside the model: for TensorRT, with the profile and workspace
    it was built with (what mmdeploy's own tools would read)."""
    deploy_cfg = load_deploy_config(target.backend, params["opset"])
    if target.backend == "tensorrt":
        deploy_cfg.backend_config.model_inputs = tensorrt_model_inputs(profiles)
        deploy_cfg.backend_config.common_config.max_workspace_size = int(params["tensorrt"]["workspace_mib"]) << 20
        deploy_cfg.backend_config.common_config.fp16_mode = target.precision == "fp16"
        deploy_cfg.backend_config.common_config.int8_mode = target.precision == "int8"
    return deploy_cfg


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.deploy")
    parser.add_argument("--target", required=True, help="a deploy.targets entry, e.g. onnxruntime-int8")
    target = parse_target(parser.parse_args().target)
    trt = None
    if target.backend == "tensorrt":
        from mmloop_runtime.backends import cuda_runtime
        from stages.common.tensorrt_engine import require_tensorrt

        trt = require_tensorrt(target.name)  # at once: before any model is loaded or built
        try:
            cuda_runtime()  # the runtime's engine check needs device buffers without torch
        except RuntimeError as error:
            raise StageError(f"deploy target {target.name}: {error}") from None
    params = load_params("deploy")
    max_map_delta, max_abs_diff = check_tolerance(target, params["tolerance"])
    runtime_map_delta, runtime_box_diff = runtime_tolerance(params.get("runtime_tolerance"))
    info_file = require_trained_model(load_params("evaluate")["split"])
    for path in (ONNX_MODEL, ONNX_DIR / MODEL_CFG):
        if not path.is_file():
            raise StageError(f"{path}: not found; run `dvc repro export`")
    device = select_device("cuda" if target.backend == "tensorrt" else "cpu")

    from mmengine.config import Config

    from stages.common.deployed_eval import compare_on_split, comparison_report, pytorch_model
    from stages.common.tensorrt_support import input_profiles

    model_cfg = Config.fromfile(str(ONNX_DIR / MODEL_CFG))
    max_points, features, _ = voxel_layout(model_cfg)
    profiles = input_profiles(params["voxels"], max_points, features)
    deploy_cfg = target_deploy_config(target, params, profiles)
    if device == "cuda":
        import torch

        # TF32 (cuDNN's default on Ampere+) rounds convolution inputs to 10 mantissa bits; the
        # fp32 parity check compares fp32 with fp32 (tensorrt_engine.build_plan clears it too).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    reference = pytorch_model(model_cfg, MODEL, device)
    classes = list(model_cfg.class_names)
    with built_whole(target.out_dir) as building:
        if trt is not None:
            built = build_tensorrt(trt, target, building, reference, model_cfg, params, profiles)
        else:
            built = build_onnxruntime(target, building, reference, model_cfg, params)
        deploy_cfg.dump(str(building / DEPLOY_CFG))
        shutil.copyfile(ONNX_DIR / MODEL_CFG, building / MODEL_CFG)
        deployed = backend_model(target, building, model_cfg, deploy_cfg, device)
        runtime = runtime_detector(target, building)
        print(f"mmloop deploy@{target.name}: {info_file.name} through PyTorch ({device}), mmdeploy's backend model"
              f"{' and mmloop_runtime' if runtime else ''}, {params['latency_rounds']} timed rounds", flush=True)
        comparison = compare_on_split(reference, deployed, model_cfg, info_file, device, int(params["warmup"]),
                                      int(params["latency_rounds"]), runtime, runtime_box_diff)
    report = {"target": target.name, "device": device, **comparison_report(comparison, classes), **built}
    write_json(target.metrics, report)
    print(f"mmloop deploy@{target.name}: mAP {report['mAP']:.2f} (PyTorch {report['mAP_pytorch']:.2f}, "
          f"delta {report['mAP_delta']:+.2f}), max |d| of head outputs {report['max_abs_diff']:.2e}, "
          f"latency {report['latency_ms']:.1f} ms vs {report['latency_ms_pytorch']:.1f} ms "
          f"(ratio {report['latency_ratio']:.2f}); wrote {target.out_dir}/ and {target.metrics}")
    if "runtime_mAP" in report:
        steps = ", ".join(f"{step} {ms:.1f}" for step, ms in report["runtime_latency_ms"].items())
        print(f"mmloop deploy@{target.name}: mmloop_runtime mAP {report['runtime_mAP']:.2f} (delta "
              f"{report['runtime_mAP_delta']:+.2f} vs mmdeploy), {report['runtime_frames_agreeing']}/{report['frames']} "
              f"frames with the same boxes (max |d| {report['runtime_box_max_abs_diff']:.1e}), "
              f"latency ms: {steps} (ratio {report['runtime_latency_ratio']:.2f} vs mmdeploy)")
    if abs(report["mAP_delta"]) > max_map_delta:
        raise StageError(f"{target.metrics}: mAP delta {report['mAP_delta']:+.3f} exceeds deploy.tolerance."
                         f"{target.precision}.map_delta {max_map_delta}; the deployed model is not accurate enough")
    if max_abs_diff is not None and report["max_abs_diff"] > max_abs_diff:
        raise StageError(f"{target.metrics}: head outputs differ from PyTorch by up to {report['max_abs_diff']:.2e}, "
                         f"over deploy.tolerance.{target.precision}.max_abs_diff {max_abs_diff:g}")
    check_runtime(target, report, runtime_map_delta, runtime_box_diff)


if __name__ == "__main__":
    run_stage("deploy", main)
